/**
 * Decoding of `audio/<source>/clip` payloads (WAV bytes, raw PCM named by an MQTT v5 content type, or a
 * JSON envelope) into planar float PCM, and encoding of stored clips as 16-bit WAV. Pure; never throws
 * for bad input: every refusal is a stable code and a short reason that never quotes payload bytes.
 *
 * Nothing is allocated from a header's claim: sizes, rates and channel counts are checked against the
 * payload's real length and the limits first, and samples are decoded only from bytes that are there.
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

/** Stable machine-readable reject codes of {@link decodeAudioPayload}. */
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

/** Longest accepted `prompt`, chars. */
const MAX_PROMPT_LENGTH = 2000;
/** ISO strings longer than this are not timestamps. */
const MAX_TS_STRING_LENGTH = 64;
/** Requires a full calendar date, so Date.parse's loose forms ("May 1", "2024") are refused. */
const ISO_DATE_PREFIX = /^[+-]?\d{4,6}-\d{2}-\d{2}/;
/** Non-audio JSON fields may add this much to a JSON payload beyond the base64 audio, bytes. */
const JSON_OVERHEAD_BYTES = 8192;
const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;
const DATA_URL_PREFIX = /^data:[a-z0-9./+-]*(;[a-z0-9=.-]+)*;base64,/i;
const MAX_CONTENT_TYPE_LENGTH = 256;
const MAX_REASON_LENGTH = 199;

/**
 * Data sizes that streaming writers leave in the header when they cannot seek back to patch it:
 * 0xFFFFFFFF (ffmpeg, RF64), 0x7FFFFFFF, 0x7FFFF000 (sox writing to a pipe) and 0. With one of these the
 * decoder takes the bytes that are there (see {@link decodeWav}).
 */
const UNKNOWN_DATA_SIZES = new Set([0xffffffff, 0x7fffffff, 0x7ffff000, 0]);

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** Bytes 2..15 of the KSDATAFORMAT_SUBTYPE GUIDs that wrap a plain format tag (mmreg.h). */
const SUBFORMAT_GUID_TAIL = [
  0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
];

/** Format tags of WAV codecs this decoder refuses, by name (mmreg.h). */
const CODEC_NAMES = new Map<number, string>([
  [0x0002, 'Microsoft ADPCM'],
  [0x0006, 'A-law'],
  [0x0007, 'mu-law'],
  [0x0010, 'OKI ADPCM'],
  [0x0011, 'IMA ADPCM'],
  [0x0014, 'G.723 ADPCM'],
  [0x0022, 'TrueSpeech'],
  [0x0031, 'GSM 6.10'],
  [0x0040, 'G.721 ADPCM'],
  [0x0050, 'MPEG audio'],
  [0x0055, 'MP3'],
  [0x0064, 'G.726 ADPCM'],
  [0x0092, 'AC-3'],
  [0x00ff, 'AAC'],
  [0x0161, 'WMA'],
  [0x1610, 'AAC (HE)'],
  [0x2000, 'AC-3'],
  [0x2001, 'DTS'],
  [0x674f, 'Vorbis'],
  [0x6750, 'Vorbis'],
  [0x704f, 'Opus'],
  [0xf1ac, 'FLAC'],
]);

/** Content types of codecs this decoder refuses, by name. */
const UNSUPPORTED_CONTENT_TYPES = new Map<string, string>([
  ['audio/mpeg', 'MP3'],
  ['audio/mp3', 'MP3'],
  ['audio/ogg', 'Ogg'],
  ['audio/opus', 'Opus'],
  ['audio/flac', 'FLAC'],
  ['audio/x-flac', 'FLAC'],
  ['audio/aac', 'AAC'],
  ['audio/mp4', 'MP4 audio'],
  ['audio/webm', 'WebM audio'],
  ['audio/amr', 'AMR'],
  ['audio/basic', 'mu-law'],
  ['audio/pcmu', 'mu-law'],
  ['audio/pcma', 'A-law'],
  ['audio/l8', '8-bit L8'],
]);

function reject(code: AudioRejectCode, reason: string): AudioRejection {
  return { ok: false, code, reason: reason.slice(0, MAX_REASON_LENGTH) };
}

function ascii(bytes: Uint8Array, at: number, length: number): string {
  let text = '';
  for (let i = at; i < Math.min(at + length, bytes.length); i++) text += String.fromCharCode(bytes[i]!);
  return text;
}

/** A chunk id as printable text for a reason; other bytes become '?', so no payload byte is replayed raw. */
function chunkName(bytes: Uint8Array, at: number): string {
  let text = '';
  for (let i = at; i < Math.min(at + 4, bytes.length); i++) {
    const b = bytes[i]!;
    text += b >= 0x20 && b < 0x7f && b !== 0x27 ? String.fromCharCode(b) : '?';
  }
  return text;
}

function isChunkId(bytes: Uint8Array, at: number): boolean {
  if (at + 4 > bytes.length) return false;
  for (let i = at; i < at + 4; i++) {
    const b = bytes[i]!;
    if (b < 0x20 || b > 0x7e) return false;
  }
  return true;
}

/** Clips to [-1, 1]; NaN becomes 0. */
function clipSample(x: number): number {
  return Number.isNaN(x) ? 0 : Math.max(-1, Math.min(1, x));
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Names a known non-WAV audio container by its magic number; undefined when none matches. */
export function sniffAudioCodec(bytes: Uint8Array): string | undefined {
  const head4 = ascii(bytes, 0, 4);
  if (head4 === 'OggS') return 'Ogg';
  if (head4 === 'fLaC') return 'FLAC';
  if (head4 === 'RIFX') return 'big-endian RIFX WAV';
  if (head4 === 'FORM' && ascii(bytes, 8, 3) === 'AIF') return 'AIFF';
  if (head4 === '.snd') return 'Sun AU';
  if (head4 === 'caff') return 'CAF';
  if (head4 === 'MThd') return 'MIDI';
  if (ascii(bytes, 0, 5) === '#!AMR') return 'AMR';
  if (ascii(bytes, 0, 3) === 'ID3') return 'MP3';
  if (ascii(bytes, 4, 4) === 'ftyp') return 'MP4 audio';
  if (bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3)
    return 'WebM/Matroska';
  if (bytes.length >= 2 && bytes[0] === 0xff) {
    const b1 = bytes[1]!;
    if ((b1 & 0xf6) === 0xf0) return 'AAC (ADTS)';
    if ((b1 & 0xe0) === 0xe0 && (b1 & 0x06) !== 0) return 'MP3';
  }
  return undefined;
}

/** Shared checks for every layout once rate, channels and byte counts are known; nothing allocated yet. */
function checkShape(
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
interface Layout {
  encoding: SampleEncoding;
  bytesPerSample: number;
  bigEndian: boolean;
}

/**
 * Deinterleaves `frames` frames of `channels` samples starting at `offset` into planar floats in [-1, 1].
 * The caller has checked that the bytes are there. Float NaN becomes 0 and floats beyond +-1 are clipped,
 * so that one bad sample cannot poison the resampler and the voice detector downstream.
 */
function deinterleave(
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

interface WavFormat {
  encoding: SampleEncoding;
  channels: number;
  rate: number;
  blockAlign: number;
}

/** Reads and checks a 'fmt ' chunk body. */
function parseFmt(
  bytes: Uint8Array,
  at: number,
  size: number,
  limits: AudioLimits,
): WavFormat | AudioRejection {
  if (size < 16) return reject('bad-header', `'fmt ' chunk is ${size} bytes; at least 16 expected`);
  const dv = view(bytes);
  let tag = dv.getUint16(at, true);
  const channels = dv.getUint16(at + 2, true);
  const rate = dv.getUint32(at + 4, true);
  const blockAlign = dv.getUint16(at + 12, true);
  const bits = dv.getUint16(at + 14, true);
  if (tag === WAVE_FORMAT_EXTENSIBLE) {
    if (size < 40)
      return reject('bad-header', `WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is ${size} bytes; 40 expected`);
    const guidTag = dv.getUint16(at + 24, true);
    for (let i = 0; i < SUBFORMAT_GUID_TAIL.length; i++) {
      if (bytes[at + 26 + i] !== SUBFORMAT_GUID_TAIL[i]) {
        return reject('unsupported-codec', 'WAVE_FORMAT_EXTENSIBLE with a non-standard subformat GUID');
      }
    }
    tag = guidTag;
  }
  if (tag !== WAVE_FORMAT_PCM && tag !== WAVE_FORMAT_IEEE_FLOAT) {
    const name = CODEC_NAMES.get(tag) ?? `format tag 0x${tag.toString(16).padStart(4, '0')}`;
    return reject('unsupported-codec', `${name} in WAV is not supported (accepted: PCM, IEEE float)`);
  }
  let encoding: SampleEncoding | undefined;
  if (tag === WAVE_FORMAT_PCM) {
    encoding = ({ 8: 'pcm-u8', 16: 'pcm-s16', 24: 'pcm-s24', 32: 'pcm-s32' } as const)[bits as 8];
  } else {
    encoding = ({ 32: 'float32', 64: 'float64' } as const)[bits as 32];
  }
  if (encoding === undefined) {
    const kind = tag === WAVE_FORMAT_PCM ? 'PCM' : 'float';
    return reject('unsupported-codec', `${bits}-bit ${kind} WAV is not supported`);
  }
  if (channels === 0 || channels > limits.maxChannels) {
    return reject('bad-channels', `${channels} channels; accepted: 1 to ${limits.maxChannels}`);
  }
  if (rate < MIN_SAMPLE_RATE || rate > MAX_SAMPLE_RATE) {
    return reject('bad-rate', `sample rate ${rate} Hz; accepted: ${MIN_SAMPLE_RATE} to ${MAX_SAMPLE_RATE}`);
  }
  // The block align fixes where each frame starts; one that disagrees with channels x bits means one
  // of the three is wrong, and guessing which would misread every sample. (The byte rate is redundant
  // and often wrong in the wild: it is not used.)
  const expected = channels * (bits / 8);
  if (blockAlign !== expected) {
    return reject(
      'bad-header',
      `block align ${blockAlign} does not match ${channels} ch x ${bits} bits (${expected} bytes)`,
    );
  }
  return { encoding, channels, rate, blockAlign };
}

/**
 * Decodes RIFF/WAVE (and RF64) bytes. Chunks are walked within the payload: unknown ones are skipped,
 * odd sizes are padded (and a writer that forgot the pad byte is tolerated), 'fmt ' must precede 'data'
 * as RIFF requires, and nothing after 'data' is read.
 *
 * Data size policy:
 * - a placeholder size ({@link UNKNOWN_DATA_SIZES}: what streaming writers leave) means "to the end of
 *   the payload" (RF64: 0xFFFFFFFF defers to the ds64 chunk's 64-bit size, and is a placeholder too
 *   when that is missing or 0);
 * - a real size larger than what arrived is `lying-size` when it is over `maxBytes` (no payload could
 *   ever carry it: a broken or hostile header) and `truncated` otherwise (the upload was cut); the
 *   same holds for any chunk before 'data';
 * - either way the data must be a whole number of frames, else `truncated`: a partial frame means bytes
 *   were lost, and lost bytes may have shifted every sample after them.
 */
function decodeWav(bytes: Uint8Array, limits: AudioLimits): DecodedAudio | AudioRejection {
  const riff = ascii(bytes, 0, 4);
  if (bytes.length < 12 || ascii(bytes, 8, 4) !== 'WAVE') {
    return reject('bad-header', `${riff} payload of ${bytes.length} bytes has no WAVE form type`);
  }
  const dv = view(bytes);
  let format: WavFormat | undefined;
  let ds64Size: number | undefined;
  let at = 12;
  while (true) {
    if (at + 8 > bytes.length) {
      return reject(
        format ? 'truncated' : 'bad-header',
        format ? "WAV ends before its 'data' chunk" : "WAV has no 'fmt ' chunk",
      );
    }
    const id = ascii(bytes, at, 4);
    const size = dv.getUint32(at + 4, true);
    const body = at + 8;
    const available = bytes.length - body;
    if (id === 'data') {
      if (format === undefined) return reject('bad-header', "'data' chunk comes before the 'fmt ' chunk");
      // undefined: the writer did not know the size when it wrote the header.
      let claimed: number | undefined = size;
      if (riff === 'RF64' && size === 0xffffffff) {
        claimed = ds64Size !== undefined && ds64Size > 0 ? ds64Size : undefined;
      } else if (UNKNOWN_DATA_SIZES.has(size) && (size !== 0 || available > 0)) {
        claimed = undefined;
      }
      let dataBytes = available;
      if (claimed !== undefined && claimed > available) {
        if (claimed > limits.maxBytes) {
          return reject(
            'lying-size',
            `'data' chunk claims ${claimed} bytes; ${available} arrived (limit ${limits.maxBytes})`,
          );
        }
        return reject('truncated', `'data' chunk claims ${claimed} bytes; only ${available} arrived`);
      }
      if (claimed !== undefined) dataBytes = claimed;
      if (dataBytes % format.blockAlign !== 0) {
        return reject(
          'truncated',
          `WAV data is ${dataBytes} bytes, not a whole number of ${format.blockAlign}-byte frames`,
        );
      }
      const frames = dataBytes / format.blockAlign;
      const bad = checkShape(format.rate, format.channels, frames, bytes.length, limits);
      if (bad) return bad;
      const layout = {
        encoding: format.encoding,
        bytesPerSample: format.blockAlign / format.channels,
        bigEndian: false,
      };
      const channels = deinterleave(bytes, body, frames, format.channels, layout);
      return {
        ok: true,
        audio: { sampleRate: format.rate, channels },
        format: 'wav',
        encoding: format.encoding,
      };
    }
    if (size > available) {
      // As for 'data' below: an impossible claim is a broken header, a plausible one a cut upload.
      return reject(
        size > limits.maxBytes ? 'lying-size' : 'truncated',
        `'${chunkName(bytes, at)}' chunk claims ${size} bytes; ${available} are left in the payload`,
      );
    }
    if (id === 'fmt ') {
      if (format !== undefined) return reject('bad-header', "WAV has two 'fmt ' chunks");
      const parsed = parseFmt(bytes, body, size, limits);
      if ('ok' in parsed) return parsed;
      format = parsed;
    } else if (id === 'ds64' && size >= 16) {
      // 64-bit data size at offset 8 (EBU Tech 3306); a high word means more than any payload holds.
      const high = dv.getUint32(body + 12, true);
      ds64Size = high === 0 ? dv.getUint32(body + 8, true) : Number.MAX_SAFE_INTEGER;
    }
    let next = body + size;
    // RIFF pads odd chunks to an even size; some writers forget. Take the pad only when a chunk id follows it.
    if (size % 2 === 1 && !(isChunkId(bytes, next) && !isChunkId(bytes, next + 1))) next += 1;
    at = next;
  }
}

interface RawLayout {
  format: AudioFormat;
  layout: Layout;
  rate: number;
  channels: number;
}

/** Decodes headerless interleaved PCM. */
function decodeRaw(bytes: Uint8Array, raw: RawLayout, limits: AudioLimits): DecodedAudio | AudioRejection {
  const frameBytes = raw.layout.bytesPerSample * raw.channels;
  // Channels first: with 0 channels the frame size is 0 and nothing below makes sense.
  const shapeFirst = checkShape(raw.rate, raw.channels, 1, 0, limits);
  if (shapeFirst) return shapeFirst;
  if (bytes.length % frameBytes !== 0) {
    return reject(
      'truncated',
      `${raw.format} data is ${bytes.length} bytes, not a whole number of ${frameBytes}-byte frames`,
    );
  }
  const frames = bytes.length / frameBytes;
  const bad = checkShape(raw.rate, raw.channels, frames, bytes.length, limits);
  if (bad) return bad;
  const channels = deinterleave(bytes, 0, frames, raw.channels, raw.layout);
  return {
    ok: true,
    audio: { sampleRate: raw.rate, channels },
    format: raw.format,
    encoding: raw.layout.encoding,
  };
}

const RAW_LAYOUTS: Record<string, Omit<RawLayout, 'rate' | 'channels'>> = {
  l16: { format: 'L16', layout: { encoding: 'pcm-s16', bytesPerSample: 2, bigEndian: true } },
  l24: { format: 'L24', layout: { encoding: 'pcm-s24', bytesPerSample: 3, bigEndian: true } },
  s16le: { format: 's16le', layout: { encoding: 'pcm-s16', bytesPerSample: 2, bigEndian: false } },
  f32le: { format: 'f32le', layout: { encoding: 'float32', bytesPerSample: 4, bigEndian: false } },
};

/** A parsed `type/subtype; name=value` content type (RFC 2045): lower-case names, unquoted values. */
interface ContentType {
  type: string;
  params: Map<string, string>;
}

function parseContentType(text: string): ContentType | undefined {
  if (text.length > MAX_CONTENT_TYPE_LENGTH) return undefined;
  const parts = text.split(';');
  const type = parts[0]!.trim().toLowerCase();
  if (!/^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/.test(type)) return undefined;
  const params = new Map<string, string>();
  for (const part of parts.slice(1)) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) return undefined;
    const name = part.slice(0, eq).trim().toLowerCase();
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name === '' || params.has(name)) return undefined;
    params.set(name, value);
  }
  return { type, params };
}

/** Reads a positive integer parameter; `undefined` when absent, NaN when malformed. */
function intParam(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  return /^\d{1,9}$/.test(value) ? Number(value) : Number.NaN;
}

/** `audio/L16;rate=R;channels=C` (RFC 2586; L24 per RFC 3190): rate required, channels default 1. */
function rawFromContentType(ct: ContentType): RawLayout | AudioRejection {
  const base = RAW_LAYOUTS[ct.type.slice('audio/'.length)]!;
  const rate = intParam(ct.params.get('rate'));
  if (rate === undefined)
    return reject('bad-content-type', `${base.format} content type needs a rate parameter`);
  const channels = intParam(ct.params.get('channels')) ?? 1;
  if (Number.isNaN(rate) || Number.isNaN(channels)) {
    return reject('bad-content-type', `${base.format} rate and channels must be integers`);
  }
  return { ...base, rate, channels };
}

function parseTs(value: unknown): number | AudioRejection {
  if (typeof value === 'number') {
    if (Number.isFinite(value) && value >= 0) return value;
    return reject('bad-timestamp', 'ts must be a non-negative finite epoch ms number or an ISO 8601 string');
  }
  if (typeof value === 'string' && value.length <= MAX_TS_STRING_LENGTH && ISO_DATE_PREFIX.test(value)) {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return ms;
  }
  return reject('bad-timestamp', 'ts must be an ISO 8601 string or epoch ms');
}

/** Reads an optional JSON integer field; a rejection when present but not an integer. */
function intField(obj: Record<string, unknown>, name: string): number | undefined | AudioRejection {
  const value = obj[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    return reject('bad-field', `JSON "${name}" must be an integer`);
  }
  return value;
}

/**
 * The JSON envelope `{"audio": base64, "format": "wav"|"L16"|"L24"|"s16le"|"f32le", "rate"?, "channels"?,
 * "ts"?, "prompt"?}`. `format` defaults to "wav"; `rate` is required for the raw formats and `channels`
 * defaults to 1; both are ignored for WAV, whose header says.
 */
function decodeJson(payload: Uint8Array, limits: AudioLimits): AudioDecodeResult {
  const maxJson = Math.ceil((limits.maxBytes * 4) / 3) + JSON_OVERHEAD_BYTES;
  if (payload.length > maxJson) {
    return reject('too-large', `JSON payload is ${payload.length} bytes, over the ${maxJson} byte limit`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch {
    return reject('bad-json', 'payload starts like JSON but does not parse');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return reject('bad-json', 'JSON payload must be an object with an "audio" field');
  }
  const obj = doc as Record<string, unknown>;
  if (typeof obj['audio'] !== 'string') return reject('bad-field', 'JSON "audio" must be a base64 string');
  const formatField = obj['format'] ?? 'wav';
  if (typeof formatField !== 'string') return reject('bad-field', 'JSON "format" must be a string');
  const formatKey = formatField.toLowerCase();
  if (formatKey !== 'wav' && RAW_LAYOUTS[formatKey] === undefined) {
    return reject('bad-field', 'JSON "format" must be one of wav, L16, L24, s16le, f32le');
  }
  const rate = intField(obj, 'rate');
  const channels = intField(obj, 'channels');
  if (typeof rate === 'object') return rate;
  if (typeof channels === 'object') return channels;
  let ts: number | undefined;
  if (obj['ts'] !== undefined && obj['ts'] !== null) {
    const parsed = parseTs(obj['ts']);
    if (typeof parsed !== 'number') return parsed;
    ts = parsed;
  }
  let prompt: string | undefined;
  if (obj['prompt'] !== undefined && obj['prompt'] !== null) {
    const value = obj['prompt'];
    if (typeof value !== 'string' || value.length > MAX_PROMPT_LENGTH) {
      return reject('bad-field', `JSON "prompt" must be a string of at most ${MAX_PROMPT_LENGTH} chars`);
    }
    if (value.trim().length > 0) prompt = value;
  }
  const text = obj['audio'].replace(DATA_URL_PREFIX, '').replace(/\s+/g, '');
  if (text.length === 0) return reject('empty', 'JSON "audio" is empty');
  if (text.length % 4 === 1 || !BASE64_BODY.test(text)) {
    return reject('bad-base64', 'JSON "audio" is not valid base64');
  }
  const audioBytes = Buffer.from(text, 'base64');
  let result: AudioDecodeResult;
  if (formatKey === 'wav') {
    result = decodeBytes(audioBytes, limits);
  } else {
    if (rate === undefined) return reject('bad-field', `JSON "rate" is required for format ${formatField}`);
    result = decodeRaw(audioBytes, { ...RAW_LAYOUTS[formatKey]!, rate, channels: channels ?? 1 }, limits);
  }
  if (!result.ok) return result;
  if (ts !== undefined) result.ts = ts;
  if (prompt !== undefined) result.prompt = prompt;
  return result;
}

/** WAV bytes, or a named unsupported container, or not audio at all. */
function decodeBytes(bytes: Uint8Array, limits: AudioLimits, contentType?: string): AudioDecodeResult {
  if (bytes.length === 0) return reject('empty', 'audio is empty');
  if (bytes.length > limits.maxBytes) {
    return reject('too-large', `audio is ${bytes.length} bytes, over the ${limits.maxBytes} byte limit`);
  }
  const magic = ascii(bytes, 0, 4);
  if (magic === 'RIFF' || magic === 'RF64') return decodeWav(bytes, limits);
  const codec =
    sniffAudioCodec(bytes) ?? (contentType ? UNSUPPORTED_CONTENT_TYPES.get(contentType) : undefined);
  if (codec !== undefined) {
    return reject(
      'unsupported-codec',
      `${codec} audio is not supported (accepted: WAV PCM/float, L16, JSON)`,
    );
  }
  return reject('not-audio', `${bytes.length} bytes with no WAV header and no raw PCM content type`);
}

function firstNonSpace(bytes: Uint8Array): number | undefined {
  for (const b of bytes) {
    if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return b;
  }
  return undefined;
}

/**
 * Decodes one `audio/<source>/clip` payload into planar float PCM:
 * - WAV/RIFF bytes (RF64 too): integer PCM 8 (unsigned), 16, 24, 32 bit, IEEE float 32/64, and
 *   WAVE_FORMAT_EXTENSIBLE wrapping either; any rate from 1 to 384 kHz; 1..maxChannels channels;
 * - raw PCM when the MQTT v5 content type is `audio/L16;rate=R;channels=C` (RFC 2586: big-endian signed
 *   16-bit, channels default 1) or `audio/L24;...` (RFC 3190);
 * - a JSON envelope `{"audio": base64, "format"?, "rate"?, "channels"?, "ts"?, "prompt"?}`.
 * Any other content type is a hint only: the bytes are sniffed. Limits are checked from headers before a
 * sample is decoded. Never throws for bad input.
 */
export function decodeAudioPayload(
  payload: Uint8Array,
  contentType: string | undefined,
  limits: AudioLimits,
): AudioDecodeResult {
  if (payload.length === 0) return reject('empty', 'payload is empty');
  let type: string | undefined;
  if (contentType !== undefined && contentType.trim() !== '') {
    const ct = parseContentType(contentType);
    const head = contentType.trim().toLowerCase();
    if (head.startsWith('audio/l16') || head.startsWith('audio/l24')) {
      if (ct === undefined || (ct.type !== 'audio/l16' && ct.type !== 'audio/l24')) {
        return reject('bad-content-type', 'content type is not of the form audio/L16;rate=R;channels=C');
      }
      if (payload.length > limits.maxBytes) {
        return reject(
          'too-large',
          `audio is ${payload.length} bytes, over the ${limits.maxBytes} byte limit`,
        );
      }
      const raw = rawFromContentType(ct);
      if ('ok' in raw) return raw;
      return decodeRaw(payload, raw, limits);
    }
    type = ct?.type;
  }
  if (firstNonSpace(payload) === 0x7b /* { */) return decodeJson(payload, limits);
  return decodeBytes(payload, limits, type);
}

/**
 * Encodes mono samples as a 16-bit PCM WAV (44-byte header), for stored clips. Samples beyond [-1, 1]
 * are clipped and NaN becomes silence. The Buffer owns its whole ArrayBuffer (never a slice of Node's
 * pool), so `buffer` can be transferred to another thread.
 */
export function encodeWav(samples: Float32Array, sampleRate: number): Buffer {
  const dataBytes = samples.length * 2;
  const out = Buffer.alloc(44 + dataBytes);
  out.write('RIFF', 0, 'latin1');
  out.writeUInt32LE(36 + dataBytes, 4);
  out.write('WAVE', 8, 'latin1');
  out.write('fmt ', 12, 'latin1');
  out.writeUInt32LE(16, 16);
  out.writeUInt16LE(WAVE_FORMAT_PCM, 20);
  out.writeUInt16LE(1, 22);
  out.writeUInt32LE(sampleRate, 24);
  out.writeUInt32LE(sampleRate * 2, 28);
  out.writeUInt16LE(2, 32);
  out.writeUInt16LE(16, 34);
  out.write('data', 36, 'latin1');
  out.writeUInt32LE(dataBytes, 40);
  const pcm = new Int16Array(out.buffer, out.byteOffset + 44, samples.length);
  for (let i = 0; i < samples.length; i++) {
    const clipped = clipSample(samples[i]!);
    pcm[i] = Math.round(clipped < 0 ? clipped * 32768 : clipped * 32767);
  }
  return out;
}
