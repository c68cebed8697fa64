export { type ChangeFeed, StoreChanges } from './changes.js';
export { ApiTlsError } from './errors.js';
export { type GatewayStatusSnapshot, renderGatewayMetrics } from './gatewayMetrics.js';
export {
  type JobObservation,
  METRICS_CONTENT_TYPE,
  MetricDefinitionError,
  MetricSampleError,
  MetricsRegistry,
  type MetricsRegistryOptions,
} from './metricsRegistry.js';
export {
  decodeCursor,
  encodeCursor,
  type ParsedResultsQuery,
  type ParseResultsQueryOptions,
  parseResultsQuery,
  type ResultsPageJson,
  runResultsQuery,
} from './resultsQuery.js';
export { type EventJson, eventJson, type ResultJson, resultJson } from './rows.js';
export {
  type ApiServer,
  type ApiServerOptions,
  type AskQuestion,
  type ReadinessCheck,
  startApiServer,
} from './server.js';
