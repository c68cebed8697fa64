export type { AudioSourceStats, AudioStageOptions, AudioStageStats, VoicedClip } from './audioStage.js';
export type {
  AcceptedFrame,
  CameraStats,
  FrameStageOptions,
  FrameStageStats,
  GateSettings,
} from './frameStage.js';
export { Pipeline, type PipelineOptions, type PipelineStats } from './pipeline.js';
export type { DetectorOptions } from './sensor/detector.js';
export type { TimestampLimits } from './sensor/parse.js';
export type { SensorReading, SensorRejectCode } from './sensor/types.js';
export type { SensorAnomaly, SensorStageOptions } from './sensorStage.js';
export type { PipelineSink, PipelineSource, StageBatch, StageRejection } from './types.js';
