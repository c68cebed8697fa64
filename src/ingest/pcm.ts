import { endianness } from 'node:os';
import { writeWavHeader } from '../common/index.js';

/**
 * Raw 16-bit PCM from a recorder: gain, downmix, cutting into segments at quiet moments, WAV framing.
 * Pure and synchronous, for the microphone source.
 */

/** dB to an amplitude factor: +6 dB is about 2x. */
export function gainFactor(db: number): number {
  return 10 ** (db / 20);
}

/**
 * Where to cut `samples[0, end)`: the middle of the quietest `frame`-sample frame (least energy) among
 * the frames that tile the last `window` samples back from `end`. Ties go to the later frame, so
 * segments stay as long as they can.
 */
export function quietestCut(samples: Int16Array, end: number, window: number, frame: number): number {
  const start = Math.max(0, end - window);
  let best = end;
  let bestEnergy = Number.POSITIVE_INFINITY;
  for (let frameEnd = end; frameEnd - frame >= start; frameEnd -= frame) {
    let energy = 0;
    for (let i = frameEnd - frame; i < frameEnd; i++) {
      const s = samples[i]!;
      energy += s * s;
    }
    if (energy < bestEnergy) {
      bestEnergy = energy;
      best = frameEnd - (frame >> 1);
    }
  }
  return Math.max(1, best);
}

/** A 16-bit PCM mono WAV file of `samples`. */
export function encodeWav(samples: Int16Array, sampleRate: number): Buffer {
  const dataBytes = samples.length * 2;
  const wav = Buffer.allocUnsafe(44 + dataBytes);
  writeWavHeader(wav, sampleRate, 1, samples.length);
  if (LITTLE_ENDIAN) {
    Buffer.from(samples.buffer, samples.byteOffset, dataBytes).copy(wav, 44);
  } else {
    for (let i = 0; i < samples.length; i++) wav.writeInt16LE(samples[i]!, 44 + 2 * i);
  }
  return wav;
}

const LITTLE_ENDIAN = endianness() === 'LE';

/**
 * Raw s16le interleaved chunks to mono samples with gain and clipping. A frame split across chunks is
 * carried to the next one.
 */
export class PcmReader {
  #carry = Buffer.alloc(0);
  readonly #frameBytes: number;

  constructor(
    private readonly channels: number,
    private readonly factor: number,
  ) {
    this.#frameBytes = 2 * channels;
  }

  read(chunk: Buffer): Int16Array {
    const bytes = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    const frames = Math.floor(bytes.length / this.#frameBytes);
    const used = frames * this.#frameBytes;
    this.#carry = Buffer.from(bytes.subarray(used));
    const out = new Int16Array(frames);
    const { channels, factor } = this;
    for (let f = 0; f < frames; f++) {
      let sum = 0;
      for (let c = 0; c < channels; c++) sum += bytes.readInt16LE((f * channels + c) * 2);
      const value = Math.round((sum / channels) * factor);
      out[f] = Math.min(32767, Math.max(-32768, value));
    }
    return out;
  }
}

/**
 * Continuous mono samples cut into segments of at most `capacity` samples, each cut at the quietest frame
 * of its last `window` samples. Holds at most one segment.
 */
export class PcmSegmenter {
  readonly #buffer: Int16Array;
  readonly #window: number;
  #length = 0;

  constructor(
    readonly capacity: number,
    window: number,
    private readonly frame: number,
  ) {
    this.#buffer = new Int16Array(capacity);
    // A window as long as the segment could cut it down to one frame.
    this.#window = Math.min(window, Math.floor(capacity / 2));
  }

  get length(): number {
    return this.#length;
  }

  /** Adds samples; `emit` gets each finished segment as a view that is valid only during the call. */
  push(samples: Int16Array, emit: (segment: Int16Array) => void): void {
    let offset = 0;
    while (offset < samples.length) {
      const n = Math.min(this.capacity - this.#length, samples.length - offset);
      this.#buffer.set(samples.subarray(offset, offset + n), this.#length);
      this.#length += n;
      offset += n;
      if (this.#length === this.capacity) {
        const cut = quietestCut(this.#buffer, this.#length, this.#window, this.frame);
        emit(this.#buffer.subarray(0, cut));
        this.#buffer.copyWithin(0, cut, this.#length);
        this.#length -= cut;
      }
    }
  }

  /** The buffered samples as a view valid until the next `push`; the buffer is empty afterwards. */
  flush(): Int16Array {
    const rest = this.#buffer.subarray(0, this.#length);
    this.#length = 0;
    return rest;
  }
}
