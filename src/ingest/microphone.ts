import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { isAbsolute, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { type Clock, type Logger, systemClock, type Timer } from '../common/index.js';
import { encodeWav, gainFactor, PcmReader, PcmSegmenter } from './pcm.js';

/** The recorders node-record-lpcm16 ships; any other name is taken as the path of a recorder module. */
export type BuiltInRecorder = 'arecord' | 'sox' | 'rec';

export interface MicrophoneSourceOptions {
  /** Source name, as in `audio/<source>/clip`; copied into every segment's meta. */
  source: string;
  /** ALSA device, e.g. `plughw:1,0` (arecord `-D`, sox/rec `AUDIODEV`). Default: the recorder's default. */
  device?: string | undefined;
  /**
   * `arecord` (default: alsa-utils is on every Debian/Raspberry Pi OS board), `sox`, `rec`, or the path of a
   * node-record-lpcm16 recorder module: CommonJS, `module.exports = (options) => ({ cmd, args, spawnOptions? })`,
   * resolved against the working directory.
   */
  recorder?: BuiltInRecorder | (string & {});
  /** Gain applied to every sample, dB, clipped to 16 bits. Default 0. */
  gain?: number;
  /** Rate asked of the recorder and written in the WAV header, Hz. Default 16000 (what the models take). */
  sampleRate?: number;
  /** Channels asked of the recorder; more than one are averaged to mono. Default 1. */
  channels?: number;
  /** Longest segment, seconds. Default 30 (the longest clip the audio models take). */
  segmentSeconds?: number;
  /** A full segment is cut at the quietest 20 ms frame of its last this-many seconds, seconds. Default 3. */
  cutWindowSeconds?: number;
  /** A partial segment shorter than this is dropped at stop or recorder exit, seconds. Default 0.5. */
  minSegmentSeconds?: number;
  /** First restart delay after a failure, ms; it doubles per failure, with jitter. Default 1000. */
  minBackoffMs?: number;
  /** Longest restart delay, ms. Default 60000. */
  maxBackoffMs?: number;
  /** A recorder that delivers no audio for this long is taken as hung and restarted, ms. Default 10000. */
  stallTimeoutMs?: number;
  /** Wait after SIGTERM before SIGKILL, ms. Default 3000. */
  killTimeoutMs?: number;
  /** Takes each finished segment: 16-bit PCM mono WAV bytes. Must not throw (a throw drops the segment). */
  onSegment: (wav: Buffer, meta: SegmentMeta) => void;
  /** Called with a fresh status after every state change. */
  onStatus?: ((status: MicrophoneStatus) => void) | undefined;
  logger?: Logger | undefined;
  clock?: Clock | undefined;
  /** Uniform source in [0, 1) for the backoff jitter. Default Math.random. */
  random?: (() => number) | undefined;
}

export interface SegmentMeta {
  source: string;
  /** Wall-clock time of the first sample, epoch ms (anchored on the arrival of the segment's last chunk). */
  startedAt: number;
  seconds: number;
}

export type MicrophoneState = 'starting' | 'capturing' | 'retrying' | 'stopped' | 'failed';

export interface MicrophoneStatus {
  /** `failed` only when the recorder module cannot be loaded: retrying would not change that. */
  state: MicrophoneState;
  /** The device asked for, or `default`. */
  device: string;
  recorder: string;
  /** Segments handed to `onSegment`, and their total audio, seconds. */
  segments: number;
  seconds: number;
  /** Audio held for the segment being cut, seconds. */
  bufferedSeconds: number;
  /** Partial segments under `minSegmentSeconds` and segments whose `onSegment` threw, seconds. */
  droppedSeconds: number;
  /** Recorder starts after the first. */
  restarts: number;
  /** Why the recorder last failed: its own message from stderr when it gave one. Kept after recovery. */
  lastError: string | undefined;
  /** When the next start is due, epoch ms, while `retrying`. */
  nextRetryAt: number | undefined;
  /** The recorder's process id while it runs. */
  pid: number | undefined;
}

/** Frame over which loudness is measured for the cut. */
const CUT_FRAME_SECONDS = 0.02;
/** A run that captured this much audio resets the backoff. */
const STABLE_SECONDS = 10;
/** Stderr lines kept to explain a failure. */
const STDERR_LINES = 20;

/** What node-record-lpcm16 1.0.1 exposes (it has no types). */
interface Recording {
  process: ChildProcess;
  stream(): Readable;
  stop(): void;
}
type RecordFunction = (options: Record<string, unknown>) => Recording;

const { record } = createRequire(import.meta.url)('node-record-lpcm16') as { record: RecordFunction };

const BUILT_IN: readonly string[] = ['arecord', 'sox', 'rec'];

/**
 * The board's own microphone: runs a recorder process (arecord, sox) through node-record-lpcm16 for raw
 * 16-bit PCM, cuts it into WAV segments of at most `segmentSeconds` and hands each to `onSegment`.
 * Callbacks, not events: nothing here can raise an unhandled 'error' that would take the daemon down. A
 * missing, busy or failing microphone shows in `status()` and is retried with capped exponential backoff
 * and jitter, for as long as the source runs. A stopped source stays stopped: start a new one.
 */
export class MicrophoneSource {
  readonly #o: Required<Omit<MicrophoneSourceOptions, 'device' | 'onStatus' | 'logger'>> &
    Pick<MicrophoneSourceOptions, 'device' | 'onStatus' | 'logger'>;
  readonly #segmenter: PcmSegmenter;
  #state: MicrophoneState = 'starting';
  #segments = 0;
  #samples = 0;
  #droppedSamples = 0;
  #restarts = 0;
  #attempt = 0;
  #lastError: string | undefined;
  #nextRetryAt: number | undefined;
  #recording: Recording | undefined;
  #retry: Timer | undefined;
  #stopping: Promise<void> | undefined;
  /** Wall-clock arrival of the latest chunk, and the run's samples up to its end: anchors `startedAt`. */
  #anchorAt = 0;
  #anchorSamples = 0;
  /** The run's samples already handed over or dropped. */
  #emittedSamples = 0;

  private constructor(options: MicrophoneSourceOptions) {
    this.#o = {
      recorder: 'arecord',
      gain: 0,
      sampleRate: 16000,
      channels: 1,
      segmentSeconds: 30,
      cutWindowSeconds: 3,
      minSegmentSeconds: 0.5,
      minBackoffMs: 1000,
      maxBackoffMs: 60_000,
      stallTimeoutMs: 10_000,
      killTimeoutMs: 3000,
      clock: systemClock,
      random: Math.random,
      ...definedOnly(options),
    };
    const o = this.#o;
    for (const key of ['sampleRate', 'channels', 'segmentSeconds', 'minBackoffMs', 'maxBackoffMs'] as const) {
      if (!(o[key] > 0)) throw new RangeError(`microphone ${key} must be positive, not ${o[key]}`);
    }
    for (const key of ['gain', 'cutWindowSeconds', 'minSegmentSeconds'] as const) {
      if (!Number.isFinite(o[key]) || (key !== 'gain' && o[key] < 0)) {
        throw new RangeError(`microphone ${key} must be a finite number, not ${o[key]}`);
      }
    }
    const capacity = Math.round(o.sampleRate * o.segmentSeconds);
    const frame = Math.max(1, Math.round(o.sampleRate * CUT_FRAME_SECONDS));
    this.#segmenter = new PcmSegmenter(capacity, Math.round(o.sampleRate * o.cutWindowSeconds), frame);
  }

  /** Starts capturing; never throws for a missing or failing microphone (see `status()`). */
  static start(options: MicrophoneSourceOptions): MicrophoneSource {
    const source = new MicrophoneSource(options);
    source.#spawn();
    return source;
  }

  status(): MicrophoneStatus {
    return {
      state: this.#state,
      device: this.#o.device ?? 'default',
      recorder: this.#o.recorder,
      segments: this.#segments,
      seconds: this.#samples / this.#o.sampleRate,
      bufferedSeconds: this.#segmenter.length / this.#o.sampleRate,
      droppedSeconds: this.#droppedSamples / this.#o.sampleRate,
      restarts: this.#restarts,
      lastError: this.#lastError,
      nextRetryAt: this.#nextRetryAt,
      pid: this.#recording?.process.pid,
    };
  }

  /**
   * Stops the recorder (SIGTERM, SIGKILL after `killTimeoutMs`), hands over the partial segment if it is
   * at least `minSegmentSeconds` long and resolves once the recorder has exited. Safe to call twice.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  dispose(): Promise<void> {
    return this.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #stop(): Promise<void> {
    this.#retry?.cancel();
    this.#retry = undefined;
    this.#nextRetryAt = undefined;
    const recording = this.#recording;
    if (recording) {
      const { process: child } = recording;
      const closed = new Promise<void>((done) => child.once('close', () => done()));
      // The library's stop() is a plain SIGTERM; arecord answers it with exit code 1, which the
      // library reports as an error on the stream: the close handler ignores it once stopping.
      recording.stop();
      const kill = this.#o.clock.setTimeout(() => child.kill('SIGKILL'), this.#o.killTimeoutMs);
      // Something that inherited the recorder's stdout can keep 'close' away after the recorder died.
      const release = this.#o.clock.setTimeout(() => {
        recording.stream().destroy();
        child.stderr?.destroy();
      }, 2 * this.#o.killTimeoutMs);
      await closed;
      kill.cancel();
      release.cancel();
    }
    this.#flushPartial();
    this.#setState('stopped');
  }

  #spawn(): void {
    const o = this.#o;
    const recorder =
      BUILT_IN.includes(o.recorder) || isAbsolute(o.recorder) ? o.recorder : resolve(o.recorder);
    let recording: Recording;
    try {
      // node-record-lpcm16 resolves `recorder` against its own recorders folder, so a module path must be
      // absolute; it loads the module and spawns the command synchronously.
      recording = record({
        sampleRate: o.sampleRate,
        channels: o.channels,
        audioType: 'raw',
        endOnSilence: false,
        recorder,
        ...(o.device === undefined ? {} : { device: o.device }),
      });
    } catch (error) {
      this.#lastError = `cannot load recorder ${o.recorder}: ${(error as Error).message}`;
      o.logger?.error({ source: o.source, recorder: o.recorder, err: this.#lastError }, 'microphone failed');
      this.#setState('failed');
      return;
    }
    this.#recording = recording;
    this.#anchorSamples = 0;
    this.#emittedSamples = 0;
    this.#setState('starting');
    const child = recording.process;
    const stream = recording.stream();
    const reader = new PcmReader(o.channels, gainFactor(o.gain));
    const stderr: string[] = [];
    let partialLine = '';
    let spawnError: string | undefined;
    let capturedSamples = 0;
    let lastDataAt = o.clock.monotonic();

    // A binary that cannot be spawned emits 'error' on the child (the library does not listen, so without
    // this the process would crash), then 'close' with the negated errno.
    child.on('error', (error) => {
      spawnError = error.message;
    });
    // The library emits a string 'error' on the stream for any non-zero exit, a normal stop included.
    stream.on('error', () => {});
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      const lines = (partialLine + text).split('\n');
      partialLine = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        stderr.push(line.trim().slice(0, 300));
        if (stderr.length > STDERR_LINES) stderr.shift();
        o.logger?.debug({ source: o.source, line }, 'recorder stderr');
      }
    });
    stream.on('data', (chunk: Buffer) => {
      lastDataAt = o.clock.monotonic();
      if (this.#state === 'starting') {
        this.#setState('capturing');
        o.logger?.info({ source: o.source, device: o.device, recorder: o.recorder }, 'microphone capturing');
      }
      const samples = reader.read(chunk);
      capturedSamples += samples.length;
      this.#anchorAt = o.clock.now();
      this.#anchorSamples = capturedSamples;
      this.#segmenter.push(samples, (segment) => this.#emit(segment));
    });

    let stall: Timer | undefined;
    const watch = (delay: number) => {
      stall = o.clock.setTimeout(() => {
        const quiet = o.clock.monotonic() - lastDataAt;
        if (quiet < o.stallTimeoutMs) {
          watch(o.stallTimeoutMs - quiet);
          return;
        }
        spawnError = `no audio from the recorder for ${o.stallTimeoutMs / 1000} s`;
        child.kill('SIGKILL');
      }, delay);
    };
    watch(o.stallTimeoutMs);

    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      stall?.cancel();
      if (partialLine.trim() !== '') stderr.push(partialLine.trim().slice(0, 300));
      if (this.#recording === recording) this.#recording = undefined;
      if (this.#stopping) return; // our own stop: any exit status is normal
      this.#flushPartial();
      const seconds = capturedSamples / o.sampleRate;
      const exit = signal ? `signal ${signal}` : `exit code ${code}`;
      const why =
        spawnError ?? explain(stderr) ?? `${o.recorder} exited after ${seconds.toFixed(1)} s of audio`;
      this.#lastError = `${why} (device ${o.device ?? 'default'}, ${exit})`;
      if (seconds >= STABLE_SECONDS) this.#attempt = 0;
      this.#scheduleRetry();
    });
  }

  #scheduleRetry(): void {
    const o = this.#o;
    const ceiling = Math.min(o.maxBackoffMs, o.minBackoffMs * 2 ** this.#attempt);
    // Jitter in the upper half: the delay still grows with every failure, and boards that lost power
    // together do not hammer a shared USB hub in step.
    const delay = ceiling / 2 + o.random() * (ceiling / 2);
    this.#attempt += 1;
    this.#nextRetryAt = o.clock.now() + delay;
    o.logger?.warn(
      { source: o.source, err: this.#lastError, retryInMs: Math.round(delay) },
      'microphone failed; retrying',
    );
    this.#setState('retrying');
    this.#retry = o.clock.setTimeout(() => {
      this.#retry = undefined;
      this.#nextRetryAt = undefined;
      if (this.#stopping) return;
      this.#restarts += 1;
      this.#spawn();
    }, delay);
  }

  #flushPartial(): void {
    const rest = this.#segmenter.flush();
    if (rest.length === 0) return;
    if (rest.length >= this.#o.minSegmentSeconds * this.#o.sampleRate) {
      this.#emit(rest);
    } else {
      this.#droppedSamples += rest.length;
      this.#emittedSamples += rest.length;
    }
  }

  #emit(segment: Int16Array): void {
    const o = this.#o;
    const seconds = segment.length / o.sampleRate;
    const ahead = this.#anchorSamples - this.#emittedSamples;
    const startedAt = this.#anchorAt - Math.round((ahead / o.sampleRate) * 1000);
    this.#emittedSamples += segment.length;
    try {
      o.onSegment(encodeWav(segment, o.sampleRate), { source: o.source, startedAt, seconds });
      this.#segments += 1;
      this.#samples += segment.length;
    } catch (error) {
      this.#droppedSamples += segment.length;
      o.logger?.error({ source: o.source, err: error }, 'microphone segment handler failed; segment dropped');
    }
  }

  #setState(state: MicrophoneState): void {
    this.#state = state;
    try {
      this.#o.onStatus?.(this.status());
    } catch (error) {
      this.#o.logger?.error({ source: this.#o.source, err: error }, 'microphone status handler failed');
    }
  }
}

/** The recorder's own message: its last line that is not ALSA library noise, else its last line. */
function explain(stderr: readonly string[]): string | undefined {
  for (let i = stderr.length - 1; i >= 0; i--) {
    if (!stderr[i]!.startsWith('ALSA lib')) return stderr[i];
  }
  return stderr.at(-1);
}

function definedOnly<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as T;
}
