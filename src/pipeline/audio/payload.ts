/**
 * Decoding of `audio/<source>/clip` payloads (WAV bytes, raw PCM named by an MQTT v5 content type, or a
 * JSON envelope) into planar float PCM. Pure; never throws for bad input: every refusal is a stable code
 * and a short reason that never quotes payload bytes. The WAV container itself is read by wav.ts.
 */

import { parseMediaEnvelope } from '../envelope.js';
import {
  type AudioDecodeResult,
  type AudioFormat,
  type AudioLimits,
  type AudioRejection,
  checkShape,
  type DecodedAudio,
  deinterleave,
  type Layout,
  reject,
} from './pcm.js';
import { decodeWav, hasRiffMagic, sniffAudioCodec } from './wav.js';

const MAX_CONTENT_TYPE_LENGTH = 256;

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
  const envelope = parseMediaEnvelope(payload, 'audio', limits.maxBytes);
  if ('code' in envelope) return reject(envelope.code, envelope.reason);
  const obj = envelope.doc;
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
  const audioBytes = envelope.bytes;
  let result: AudioDecodeResult;
  if (formatKey === 'wav') {
    result = decodeBytes(audioBytes, limits);
  } else {
    if (rate === undefined) return reject('bad-field', `JSON "rate" is required for format ${formatField}`);
    result = decodeRaw(audioBytes, { ...RAW_LAYOUTS[formatKey]!, rate, channels: channels ?? 1 }, limits);
  }
  if (!result.ok) return result;
  if (envelope.ts !== undefined) result.ts = envelope.ts;
  if (envelope.prompt !== undefined) result.prompt = envelope.prompt;
  return result;
}

/** WAV bytes, or a named unsupported container, or not audio at all. */
function decodeBytes(bytes: Uint8Array, limits: AudioLimits, contentType?: string): AudioDecodeResult {
  if (bytes.length === 0) return reject('empty', 'audio is empty');
  if (bytes.length > limits.maxBytes) {
    return reject('too-large', `audio is ${bytes.length} bytes, over the ${limits.maxBytes} byte limit`);
  }
  if (hasRiffMagic(bytes)) return decodeWav(bytes, limits);
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
