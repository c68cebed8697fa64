import { CAMERA_NAME } from '../config/index.js';
import type { JournalEntry, MediaFile, MediaStore } from '../store/index.js';
import { decodeFramePayload } from './frame/decode.js';
import {
  FRAME_GATE_REASONS,
  FrameGate,
  type FrameGateDecision,
  type FrameGateReason,
} from './frame/frameGate.js';
import {
  decodeFrame,
  encodeFrame,
  FramePreprocessError,
  type ModelInputSize,
  type WorkingFrame,
} from './frame/preprocess.js';
import type { StageBatch } from './types.js';

/** Change-gating settings of a camera (times in ms). */
export interface GateSettings {
  mode: 'change' | 'off';
  threshold: number;
  minIntervalMs: number;
  cooldownMs: number;
}

export interface FrameStageOptions {
  size: ModelInputSize;
  fit: 'crop' | 'letterbox';
  thumbnailSize: number;
  jpegQuality: number;
  maxPixels: number;
  maxCameras: number;
  gate: GateSettings;
  /** per camera: gate settings replacing `gate`, and a prompt */
  cameras: Readonly<Record<string, Partial<GateSettings> & { prompt?: string | undefined }>>;
  /** writes the model input and the thumbnail of an accepted frame */
  media: Pick<MediaStore, 'write'>;
  /** accepted frames become model jobs; without, they are only counted (no model: inference off) */
  describe: boolean;
  /** payload limit of a frame route, bytes */
  maxBytes: (route: string) => number;
}

/** A frame the gate let through, with its files written: the sink records them and queues its job. */
export interface AcceptedFrame {
  journalId: number;
  route: string;
  camera: string;
  /** epoch ms the frame was taken (its `ts`), else received */
  ts: number;
  input: MediaFile;
  thumbnail: MediaFile;
  /** of the source after EXIF orientation, px */
  width: number;
  height: number;
  gate: { reason: FrameGateReason; score: number | null };
  /** the frame's own prompt, else its camera's */
  prompt?: string | undefined;
}

/** Per camera: gate decisions by reason, rejects, and the last decision. */
export interface CameraStats {
  decisions: Record<FrameGateReason, number>;
  rejected: number;
  last: { at: string; reason: FrameGateReason | 'rejected'; score: number | null } | null;
}

export interface FrameStageStats {
  cameras: Record<string, CameraStats>;
  /** frames decoded and resized (not the ones prechecked away) */
  decoded: number;
  /** mean decode + resize time of those, ms */
  meanDecodeMs: number | null;
}

const zero = (): Record<FrameGateReason, number> =>
  Object.fromEntries(FRAME_GATE_REASONS.map((r) => [r, 0])) as Record<FrameGateReason, number>;

/**
 * Camera frames: check the payload (size, pixel count from the header), let the camera's change gate
 * decide (a frame that comes too soon is dropped before it is decoded), decode once into the model's
 * square input, a thumbnail and the gate's grey copy, and write the accepted frame's files. The sink then
 * queues its job; a newer frame of the same camera supersedes a job that has not started.
 */
export class FrameStage {
  readonly #o: FrameStageOptions;
  readonly #shared: FrameGate;
  readonly #own = new Map<string, FrameGate>();
  readonly #cameras = new Map<string, CameraStats>();
  #decoded = 0;
  #decodeMs = 0;

  constructor(options: FrameStageOptions) {
    this.#o = options;
    this.#shared = new FrameGate(gateOptions(options.gate));
  }

  /** Processes one journal entry of a frame route into `batch`; `captures[0]` is the camera. */
  async process(entry: JournalEntry, captures: readonly string[], batch: StageBatch): Promise<void> {
    const o = this.#o;
    batch.released.push(entry.id);
    const camera = captures[0] ?? '';
    // The camera names a media folder: nothing but a plain name may reach the file system.
    if (!CAMERA_NAME.test(camera)) {
      return this.#reject(
        entry,
        batch,
        undefined,
        'bad-camera',
        'camera name must be 1-64 letters, digits, ".", "-" or "_"',
      );
    }
    const stats = this.#stats(camera);
    if (!stats) {
      return this.#reject(
        entry,
        batch,
        undefined,
        'too-many-cameras',
        `already tracking ${this.#cameras.size} cameras (frames.maxCameras ${o.maxCameras})`,
      );
    }
    const decoded = await decodeFramePayload(entry.payload, {
      maxBytes: o.maxBytes(entry.route),
      maxPixels: o.maxPixels,
    });
    if (!decoded.ok) return this.#reject(entry, batch, stats, decoded.code, decoded.reason);

    const gate = this.#gate(camera);
    const now = entry.receivedAt;
    const early = gate.precheck(camera, now, { force: decoded.force });
    if (early) return this.#decided(stats, early, now, batch, entry);

    const options = {
      size: o.size,
      fit: o.fit,
      thumbnailSize: o.thumbnailSize,
      jpegQuality: o.jpegQuality,
      limitInputPixels: o.maxPixels,
      header: decoded.header,
    };
    let frame: WorkingFrame;
    try {
      frame = await decodeFrame(decoded.image, options);
    } catch (error) {
      if (!(error instanceof FramePreprocessError)) throw error;
      return this.#reject(entry, batch, stats, error.code, error.message);
    }
    this.#decoded += 1;
    this.#decodeMs += frame.decodeMs;
    const decision = gate.offer(camera, frame.gray, now, { force: decoded.force });
    this.#decided(stats, decision, now, batch, entry);
    if (!decision.accepted || !o.describe) return;

    // Only a frame that goes on to the model pays for its encodes and files.
    const encoded = await encodeFrame(frame, options);
    const day = new Date(now).toISOString().slice(0, 10);
    const base = `frames/${camera}/${day}/${entry.id}`;
    const [input, thumbnail] = await Promise.all([
      o.media.write({ path: `${base}-input.jpg`, source: camera, kind: 'input' }, encoded.model),
      o.media.write({ path: `${base}-thumb.jpg`, source: camera, kind: 'thumbnail' }, encoded.thumbnail),
    ]);
    batch.frames.push({
      journalId: entry.id,
      route: entry.route,
      camera,
      ts: decoded.ts ?? now,
      input,
      thumbnail,
      width: frame.width,
      height: frame.height,
      gate: { reason: decision.reason, score: decision.score },
      prompt: decoded.prompt ?? o.cameras[camera]?.prompt,
    });
  }

  stats(): FrameStageStats {
    return {
      cameras: Object.fromEntries([...this.#cameras].map(([name, s]) => [name, structuredClone(s)])),
      decoded: this.#decoded,
      meanDecodeMs: this.#decoded === 0 ? null : Math.round((this.#decodeMs / this.#decoded) * 10) / 10,
    };
  }

  #decided(
    stats: CameraStats,
    decision: FrameGateDecision,
    now: number,
    batch: StageBatch,
    entry: JournalEntry,
  ) {
    stats.decisions[decision.reason] += 1;
    stats.last = { at: new Date(now).toISOString(), reason: decision.reason, score: decision.score };
    batch.processed.push(entry.id);
  }

  #reject(
    entry: JournalEntry,
    batch: StageBatch,
    stats: CameraStats | undefined,
    code: string,
    reason: string,
  ) {
    if (stats) {
      stats.rejected += 1;
      stats.last = { at: new Date(entry.receivedAt).toISOString(), reason: 'rejected', score: null };
    }
    batch.rejected.push({ journalId: entry.id, code, reason });
  }

  /** The camera's counters, created on first sight; undefined past maxCameras. */
  #stats(camera: string): CameraStats | undefined {
    let stats = this.#cameras.get(camera);
    if (!stats) {
      if (this.#cameras.size >= this.#o.maxCameras) return undefined;
      stats = { decisions: zero(), rejected: 0, last: null };
      this.#cameras.set(camera, stats);
    }
    return stats;
  }

  /** A camera with settings of its own has its own gate; the others share one. */
  #gate(camera: string): FrameGate {
    const own = this.#o.cameras[camera];
    if (!own || !['mode', 'threshold', 'minIntervalMs', 'cooldownMs'].some((k) => k in own))
      return this.#shared;
    let gate = this.#own.get(camera);
    if (!gate) {
      gate = new FrameGate(gateOptions({ ...this.#o.gate, ...definedOnly(own) }));
      this.#own.set(camera, gate);
    }
    return gate;
  }
}

function gateOptions(g: GateSettings) {
  return { mode: g.mode, threshold: g.threshold, minIntervalMs: g.minIntervalMs, cooldownMs: g.cooldownMs };
}

function definedOnly(settings: Partial<GateSettings>): Partial<GateSettings> {
  return Object.fromEntries(
    Object.entries(settings).filter(([key, value]) => value !== undefined && key !== 'prompt'),
  ) as Partial<GateSettings>;
}
