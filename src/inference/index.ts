export { CATALOG, type CatalogEntry, findCatalogEntry } from './catalog.js';
export { defaultThreads, physicalCores } from './cpu.js';
export {
  type EngineState,
  type Generation,
  InferenceEngine,
  type InferenceEngineOptions,
  type ModelVariant,
} from './engine.js';
export {
  ModelFileError,
  ModelPullError,
  type ModelPullErrorCode,
  type ModelPullFailure,
  TaskTimeoutError,
} from './errors.js';
export { MemoryGovernor, type MemoryGovernorOptions } from './governor/governor.js';
export {
  type MemoryProbe,
  type MemorySample,
  processRss,
  readOomKills,
  systemMemoryProbe,
} from './governor/memoryProbe.js';
export {
  computeBudget,
  type Decision,
  GOVERNOR_MARGIN,
  type PlannerOptions,
  plan,
  type VariantOption,
} from './governor/planner.js';
export {
  type JobContextSource,
  type JobResult,
  JobRunner,
  type JobRunnerOptions,
  type JobRunnerStats,
  type ResultSink,
} from './jobRunner.js';
export {
  fileTypeName,
  type GgufSummary,
  ggufRamEstimate,
  type InspectOptions,
  inspectModel,
  isModelPath,
  type ListOptions,
  listModels,
  type ModelRow,
  type ResolvedModel,
  resolveModel,
  scaledRamEstimate,
  summarize,
} from './modelFiles.js';
export {
  type PulledFile,
  type PullOptions,
  type PullProgress,
  type PullResult,
  pullModel,
  sourceUrl,
} from './modelPull.js';
export {
  CapabilityError,
  type GenerateRequest,
  type GenerateResult,
  type JsonSchema,
  MEDIA_MARKER,
  type MediaInput,
  type ModelInfo,
  type Runtime,
  type RuntimeLoadOptions,
  type RuntimeName,
} from './runtime.js';
export {
  askSchema,
  audioTask,
  DEFAULT_TASKS,
  renderPrompt,
  type TaskDefinition,
  type TaskName,
  validationSchema,
} from './tasks.js';
export { WorkerCrashedError, WorkerFailedError, WorkerTimeoutError } from './worker/errors.js';
export { type WorkerExit, WorkerSupervisor, type WorkerSupervisorOptions } from './worker/supervisor.js';

/**
 * The governor's memory estimator (node-llama-cpp's GgufInsights), loaded on first use: importing it loads
 * node-llama-cpp, which the daemon itself leaves to the worker.
 */
export const loadEstimator = (): Promise<typeof import('./runtimes/estimate.js')> =>
  import('./runtimes/estimate.js');
