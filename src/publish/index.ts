export { Findings, type FindingsOptions, type FindingsStats } from './findings.js';
export {
  type DiscoveryStore,
  HomeAssistantDiscovery,
  type HomeAssistantDiscoveryOptions,
} from './homeAssistant.js';
export type { KnownSources } from './homeAssistantConfigs.js';
export { type MessageTransport, OutboxDrain, type OutboxDrainOptions } from './outboxDrain.js';
export { RequestHandler, type RequestHandlerOptions } from './requests.js';
export {
  type ErrorMessage,
  type EventMessage,
  type HealthMessage,
  type ResultMessage,
  type WindowMessage,
  type WireMessages,
  type WireTopics,
  wireTopics,
} from './topics.js';
