export { CATALOG, type CatalogEntry, findCatalogEntry } from './catalog.js';
export {
  type EngineState,
  type Generation,
  InferenceEngine,
  type InferenceEngineOptions,
  type ModelVariant,
} from './engine.js';
export { MemoryGovernor, type MemoryGovernorOptions } from './governor/governor.js';
export {
  type MemoryProbe,
  type MemorySample,
  processRss,
  systemMemoryProbe,
} from './governor/memoryProbe.js';
export type { Decision, PlannerOptions, VariantOption } from './governor/planner.js';
export {
  type JobContextSource,
  type JobResult,
  JobRunner,
  type JobRunnerOptions,
  type JobRunnerStats,
  type ResultSink,
} from './jobRunner.js';
export type {
  GenerateRequest,
  GenerateResult,
  JsonSchema,
  ModelInfo,
  Runtime,
  RuntimeLoadOptions,
} from './runtime.js';
export {
  DEFAULT_TASKS,
  renderPrompt,
  type TaskDefinition,
  type TaskName,
  validationSchema,
} from './tasks.js';
export { WorkerCrashedError, WorkerFailedError, WorkerTimeoutError } from './worker/errors.js';
export { type WorkerExit, WorkerSupervisor, type WorkerSupervisorOptions } from './worker/supervisor.js';
