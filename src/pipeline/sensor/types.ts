/** One accepted numeric sample. */
export interface SensorReading {
  /** Device name, taken from the topic. */
  device: string;
  /** Metric name, taken from the topic or from a key of the per-device object payload. */
  metric: string;
  /** Sample time, epoch ms: the payload's `ts`, or the gateway's receive time when absent. */
  ts: number;
  /** Finite sample value, within ±1e300. */
  value: number;
  /** Unit as sent by the publisher (at most 32 chars); absent when none was sent. */
  unit?: string;
}

/** Stable machine-readable reject codes. */
export type SensorRejectCode =
  | 'not-json'
  | 'wrong-type'
  | 'non-finite'
  | 'bad-timestamp'
  | 'bad-name'
  | 'empty'
  | 'content-type';

/** Outcome of parsing one message: every reading of the message, or one rejection for the whole message. */
export type SensorParseResult =
  | { ok: true; readings: SensorReading[] }
  | { ok: false; code: SensorRejectCode; reason: string };
