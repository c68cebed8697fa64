/**
 * Per-camera frame gate: only frames that changed since the camera's last ACCEPTED frame reach the model,
 * rate-limited and with a cooldown after each accepted change. Pure core: time is passed in as `now`.
 */
import {
  assertGrayImage,
  changeScore,
  DEFAULT_NOISE_FLOOR,
  type GrayImage,
  sameSize,
} from './changeScore.js';

/** Whether the gate compares frames (`'change'`) or passes every frame subject to the rate limit (`'off'`). */
export type FrameGateMode = 'change' | 'off';

/** Options for {@link FrameGate}. */
export interface FrameGateOptions {
  /**
   * Change score (0-1, see {@link changeScore}) strictly above which a frame counts as changed.
   * Default 0.02 (2% of the pixels; a 6x6 object is 3.5% of a 32x32 copy).
   */
  threshold?: number;
  /**
   * Milliseconds: at most one accepted frame per camera per this interval, in both modes; earlier frames
   * are answered `'too-soon'`. `force` bypasses it. Default 1000.
   */
  minIntervalMs?: number;
  /**
   * Milliseconds: after an accepted `'changed'` frame, further changed frames within this are answered
   * `'cooldown'`. Only `'changed'` starts a cooldown (`'first'`, `'forced'` and `'ungated'` do not);
   * `force` bypasses it. Default 10000.
   */
  cooldownMs?: number;
  /**
   * `'change'`: gate on the change score. `'off'`: no comparison (score `null`, no reference image kept);
   * every frame is accepted as `'ungated'` (the camera's first as `'first'`) but still at most one per
   * `minIntervalMs`, since the model stays the scarce resource. Default `'change'`.
   */
  mode?: FrameGateMode;
  /** Noise floor in grey levels passed to {@link changeScore}. Default 12. */
  noiseFloor?: number;
}

/** Why a frame was accepted (`first`, `changed`, `forced`, `ungated`) or dropped (the rest). */
export type FrameGateReason =
  | 'first'
  | 'changed'
  | 'forced'
  | 'ungated'
  | 'unchanged'
  | 'too-soon'
  | 'cooldown';

/** Every {@link FrameGateReason}, in a stable order. */
export const FRAME_GATE_REASONS: readonly FrameGateReason[] = [
  'first',
  'changed',
  'forced',
  'ungated',
  'unchanged',
  'too-soon',
  'cooldown',
];

/** The gate's answer for one offered frame. */
export interface FrameGateDecision {
  /** True when the frame should go on to the model. */
  accepted: boolean;
  reason: FrameGateReason;
  /**
   * Change score against the camera's last accepted frame, or `null` when none was computed (first frame,
   * `'too-soon'`, mode `'off'`). A size change against the reference scores 1.
   */
  score: number | null;
}

/** Per-camera counts of decisions by reason. */
export type FrameGateStats = Record<string, Record<FrameGateReason, number>>;

interface CameraState {
  /** Copy of the last accepted frame (mode `'change'` only). */
  reference: GrayImage | null;
  lastAcceptedAt: number;
  /** When the last `'changed'` frame was accepted; -Infinity when never. */
  lastChangedAt: number;
  counts: Record<FrameGateReason, number>;
}

function zeroCounts(): Record<FrameGateReason, number> {
  return { first: 0, changed: 0, forced: 0, ungated: 0, unchanged: 0, 'too-soon': 0, cooldown: 0 };
}

function nonNegative(name: string, value: number): number {
  if (!Number.isFinite(value) || value < 0)
    throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  return value;
}

/**
 * Decides, per camera, which frames reach the model. Rules, in order, for `offer()`:
 * 1. `force` -> accepted `'forced'` (bypasses interval and cooldown; becomes the new reference).
 * 2. No state for the camera -> accepted `'first'`.
 * 3. Less than `minIntervalMs` since the last accepted frame -> `'too-soon'` (score not computed).
 * 4. Mode `'off'` -> accepted `'ungated'`.
 * 5. Score against the last accepted frame `<= threshold` -> `'unchanged'`.
 * 6. Less than `cooldownMs` since the last accepted `'changed'` frame -> `'cooldown'`.
 * 7. Otherwise accepted `'changed'`.
 * Dropped frames never replace the reference, so slow drift accumulates until it counts as a change.
 * If `now` goes backwards, the camera's timestamps are pulled back to it, so a clock step blocks a camera
 * for at most one interval/cooldown rather than until the clock catches up.
 * Memory: one reference image (a copy) and a few numbers per camera; `forget()` drops a camera.
 */
export class FrameGate {
  readonly threshold: number;
  readonly minIntervalMs: number;
  readonly cooldownMs: number;
  readonly mode: FrameGateMode;
  readonly noiseFloor: number;
  readonly #cameras = new Map<string, CameraState>();

  constructor(options: FrameGateOptions = {}) {
    const threshold = options.threshold ?? 0.02;
    if (!(threshold >= 0 && threshold < 1))
      throw new RangeError(`threshold must be in [0, 1), got ${threshold}`);
    this.threshold = threshold;
    this.minIntervalMs = nonNegative('minIntervalMs', options.minIntervalMs ?? 1000);
    this.cooldownMs = nonNegative('cooldownMs', options.cooldownMs ?? 10_000);
    this.noiseFloor = nonNegative('noiseFloor', options.noiseFloor ?? DEFAULT_NOISE_FLOOR);
    const mode = options.mode ?? 'change';
    if (mode !== 'change' && mode !== 'off')
      throw new RangeError(`mode must be 'change' or 'off', got ${mode}`);
    this.mode = mode;
  }

  /** Offers one frame of `camera` taken/received at `now` (ms); see the class doc for the rules. */
  offer(camera: string, gray: GrayImage, now: number, options: { force?: boolean } = {}): FrameGateDecision {
    assertGrayImage(gray, 'gray');
    const state = this.#cameras.get(camera);
    if (state !== undefined) {
      if (now < state.lastAcceptedAt) state.lastAcceptedAt = now;
      if (now < state.lastChangedAt) state.lastChangedAt = now;
    }

    if (options.force) {
      const score = state?.reference ? this.#score(state.reference, gray) : null;
      return this.#accept(camera, state, gray, now, 'forced', score);
    }
    if (state === undefined) return this.#accept(camera, state, gray, now, 'first', null);
    if (now - state.lastAcceptedAt < this.minIntervalMs) return this.#drop(state, 'too-soon', null);
    if (this.mode === 'off') return this.#accept(camera, state, gray, now, 'ungated', null);

    const score = state.reference ? this.#score(state.reference, gray) : 1;
    if (score <= this.threshold) return this.#drop(state, 'unchanged', score);
    if (now - state.lastChangedAt < this.cooldownMs) return this.#drop(state, 'cooldown', score);
    state.lastChangedAt = now;
    return this.#accept(camera, state, gray, now, 'changed', score);
  }

  /**
   * Answers `'too-soon'` (and counts it) when a frame would be dropped whatever its pixels, so the caller
   * can skip decoding it; otherwise `undefined`, and the frame goes on to `offer()`.
   */
  precheck(camera: string, now: number, options: { force?: boolean } = {}): FrameGateDecision | undefined {
    const state = this.#cameras.get(camera);
    // A clock step backwards is offer()'s to handle.
    if (options.force || state === undefined || now < state.lastAcceptedAt) return undefined;
    return now - state.lastAcceptedAt < this.minIntervalMs ? this.#drop(state, 'too-soon', null) : undefined;
  }

  /** Drops everything kept for `camera` (reference image and counters); returns whether it was known. */
  forget(camera: string): boolean {
    return this.#cameras.delete(camera);
  }

  /** Number of cameras with state. */
  get size(): number {
    return this.#cameras.size;
  }

  /** A snapshot of the per-camera decision counts by reason. */
  stats(): FrameGateStats {
    const out: FrameGateStats = {};
    for (const [camera, state] of this.#cameras) out[camera] = { ...state.counts };
    return out;
  }

  #score(reference: GrayImage, gray: GrayImage): number {
    return sameSize(reference, gray) ? changeScore(reference, gray, { noiseFloor: this.noiseFloor }) : 1;
  }

  #drop(state: CameraState, reason: FrameGateReason, score: number | null): FrameGateDecision {
    state.counts[reason]++;
    return { accepted: false, reason, score };
  }

  #accept(
    camera: string,
    existing: CameraState | undefined,
    gray: GrayImage,
    now: number,
    reason: FrameGateReason,
    score: number | null,
  ): FrameGateDecision {
    const state: CameraState = existing ?? {
      reference: null,
      lastAcceptedAt: now,
      lastChangedAt: Number.NEGATIVE_INFINITY,
      counts: zeroCounts(),
    };
    if (existing === undefined) this.#cameras.set(camera, state);
    state.lastAcceptedAt = now;
    if (this.mode === 'change') state.reference = copyInto(state.reference, gray);
    state.counts[reason]++;
    return { accepted: true, reason, score };
  }
}

/** Copies `gray` into `target`'s buffer when the sizes match (no allocation), else into a new one. */
function copyInto(target: GrayImage | null, gray: GrayImage): GrayImage {
  if (target !== null && sameSize(target, gray)) {
    target.data.set(gray.data);
    return target;
  }
  return { width: gray.width, height: gray.height, data: Uint8Array.from(gray.data) };
}
