/**
 * Planar PCM and the decode result types shared by the WAV decoder (wav.ts) and the payload decoder
 * (payload.ts), with the checks and the sample conversion both use. Pure; never throws for bad input:
 * every refusal is a stable code and a short reason that never quotes payload bytes.
 */

/** Planar PCM: one array per channel, samples in [-1, 1]. */
export interface PcmAudio {
  /** Samples per second per channel, Hz. */
  sampleRate: number;
  /** One array per channel, all of the same length. */
  channels: Float32Array[];
}

/** How the payload carried its audio. */
export type AudioFormat = 'wav' | 'L16' | 'L24' | 's16le' | 'f32le';

/** Sample encoding found in the payload. */
export type SampleEncoding = 'pcm-u8' | 'pcm-s16' | 'pcm-s24' | 'pcm-s32' | 'float32' | 'float64';

/** Stable machine-readable reject codes of `decodeAudioPayload`. */
export type AudioRejectCode =
  | 'empty'
  | 'not-audio'
  | 'bad-header'
  | 'lying-size'
  | 'unsupported-codec'
  | 'too-long'
  | 'too-large'
  | 'bad-channels'
  | 'bad-rate'
  | 'truncated'
  | 'bad-json'
  | 'bad-base64'
  | 'bad-field'
  | 'bad-timestamp'
  | 'bad-content-type';

/** A payload that decoded to PCM. */
export interface DecodedAudio {
  ok: true;
  audio: PcmAudio;
  /** Capture time from the JSON `ts` field, epoch ms; absent for raw payloads or when not sent. */
  ts?: number;
  /** Per-clip prompt from the JSON `prompt` field; absent when not sent or blank. */
  prompt?: string;
  /** Container or raw layout the samples came in. */
  format: AudioFormat;
  encoding: SampleEncoding;
}

/** Why a payload was refused. `reason` is short (< 200 chars) and never quotes payload bytes. */
export interface AudioRejection {
  ok: false;
  code: AudioRejectCode;
  reason: string;
}

export type AudioDecodeResult = DecodedAudio | AudioRejection;

/** Limits applied before any sample is decoded. */
export interface AudioLimits {
  /** Largest accepted audio, bytes (WAV file or raw PCM, after base64 decoding for JSON). No default. */
  maxBytes: number;
  /** Longest accepted clip, seconds, computed from the header before decoding. No default. */
  maxSeconds: number;
  /** Most channels accepted. No default. */
  maxChannels: number;
}

/** Accepted sample rates, Hz (inclusive). */
export const MIN_SAMPLE_RATE = 1000;
export const MAX_SAMPLE_RATE = 384_000;

const MAX_REASON_LENGTH = 199;

/** A refusal; `reason` is cut to under 200 chars. */
export function reject(code: AudioRejectCode, reason: string): AudioRejection {
  return { ok: false, code, reason: reason.slice(0, MAX_REASON_LENGTH) };
}

/** Clips to [-1, 1]; NaN becomes 0. */
export function clipSample(x: number): number {
  return Number.isNaN(x) ? 0 : Math.max(-1, Math.min(1, x));
}

/** Shared checks for every layout once rate, channels and byte counts are known; nothing allocated yet. */
export function checkShape(
  rate: number,
  channels: number,
  frames: number,
  bytes: number,
  limits: AudioLimits,
): AudioRejection | undefined {
  if (!Number.isInteger(channels) || channels < 1 || channels > limits.maxChannels) {
    return reject('bad-channels', `${channels} channels; accepted: 1 to ${limits.maxChannels}`);
  }
  if (!Number.isInteger(rate) || rate < MIN_SAMPLE_RATE || rate > MAX_SAMPLE_RATE) {
    return reject('bad-rate', `sample rate ${rate} Hz; accepted: ${MIN_SAMPLE_RATE} to ${MAX_SAMPLE_RATE}`);
  }
  if (bytes > limits.maxBytes) {
    return reject('too-large', `audio is ${bytes} bytes, over the ${limits.maxBytes} byte limit`);
  }
  const seconds = frames / rate;
  if (seconds > limits.maxSeconds) {
    return reject(
      'too-long',
      `clip is ${seconds.toFixed(1)} s, over the ${limits.maxSeconds} s limit (${rate} Hz, ${channels} ch)`,
    );
  }
  if (frames === 0) return reject('empty', 'audio has no samples');
  return undefined;
}

/** Bytes per sample and the encoding of an interleaved layout. */
export interface Layout {
  encoding: SampleEncoding;
  bytesPerSample: number;
  bigEndian: boolean;
}

/**
 * Deinterleaves `frames` frames of `channels` samples starting at `offset` into planar floats in [-1, 1].
 * The caller has checked that the bytes are there. Float NaN becomes 0 and floats beyond +-1 are clipped,
 * so that one bad sample cannot poison the resampler and the voice detector downstream.
 */
export function deinterleave(
  bytes: Uint8Array,
  offset: number,
  frames: number,
  channelCount: number,
  layout: Layout,
): Float32Array[] {
  const channels = Array.from({ length: channelCount }, () => new Float32Array(frames));
  const length = frames * channelCount * layout.bytesPerSample;
  // Typed views read the host's byte order: little-endian on every target (x64, arm64, armv7).
  // They need alignment; MQTT payloads are often slices at odd offsets, so copy when needed.
  let data = bytes.subarray(offset, offset + length);
  const align = layout.bytesPerSample === 3 ? 1 : layout.bytesPerSample;
  // (Not data.slice(): on a Buffer that is a view, not a copy.)
  if (!layout.bigEndian && data.byteOffset % align !== 0) data = new Uint8Array(data);
  const { encoding } = layout;
  const fill = (source: ArrayLike<number>, scale: number, bias: number) => {
    if (channelCount === 1) {
      const out = channels[0]!;
      for (let i = 0; i < frames; i++) out[i] = (source[i]! - bias) * scale;
      return;
    }
    for (let c = 0; c < channelCount; c++) {
      const out = channels[c]!;
      for (let i = 0, j = c; i < frames; i++, j += channelCount) out[i] = (source[j]! - bias) * scale;
    }
  };
  if (layout.bigEndian) {
    const step = layout.bytesPerSample;
    for (let c = 0; c < channelCount; c++) {
      const out = channels[c]!;
      let j = c * step;
      const stride = channelCount * step;
      if (step === 2) {
        for (let i = 0; i < frames; i++, j += stride) {
          out[i] = (((data[j]! << 24) >> 16) | data[j + 1]!) / 32768;
        }
      } else {
        for (let i = 0; i < frames; i++, j += stride) {
          out[i] = (((data[j]! << 24) >> 8) | (data[j + 1]! << 8) | data[j + 2]!) / 8388608;
        }
      }
    }
    return channels;
  }
  const { buffer, byteOffset } = data;
  const samples = frames * channelCount;
  switch (encoding) {
    case 'pcm-u8':
      fill(data, 1 / 128, 128);
      break;
    case 'pcm-s16':
      fill(new Int16Array(buffer, byteOffset, samples), 1 / 32768, 0);
      break;
    case 'pcm-s32':
      fill(new Int32Array(buffer, byteOffset, samples), 1 / 2147483648, 0);
      break;
    case 'pcm-s24':
      for (let c = 0; c < channelCount; c++) {
        const out = channels[c]!;
        const stride = channelCount * 3;
        for (let i = 0, j = c * 3; i < frames; i++, j += stride) {
          out[i] = (((data[j + 2]! << 24) | (data[j + 1]! << 16) | (data[j]! << 8)) >> 8) / 8388608;
        }
      }
      break;
    case 'float32':
    case 'float64': {
      const source =
        encoding === 'float32'
          ? new Float32Array(buffer, byteOffset, samples)
          : new Float64Array(buffer, byteOffset, samples);
      fill(source, 1, 0);
      for (const out of channels) {
        for (let i = 0; i < frames; i++) {
          out[i] = clipSample(out[i]!);
        }
      }
      break;
    }
  }
  return channels;
}
