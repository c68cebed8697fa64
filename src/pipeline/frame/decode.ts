import sharp from 'sharp';
import { parseMediaEnvelope } from '../envelope.js';

/** Image formats accepted on the frame route. */
export type FrameFormat = 'jpeg' | 'png' | 'webp';

/** Stable machine-readable reject codes of {@link decodeFramePayload}. */
export type FrameRejectCode =
  | 'empty'
  | 'not-image'
  | 'bad-json'
  | 'bad-field'
  | 'bad-base64'
  | 'bad-timestamp'
  | 'unsupported-format'
  | 'too-large'
  | 'too-many-pixels'
  | 'corrupt';

/** A frame payload that passed every check; its pixels have not been decoded yet. */
export interface DecodedFrame {
  ok: true;
  /** Encoded image bytes (the raw payload, or the base64-decoded `image` field). */
  image: Buffer;
  /** Format found by magic number. */
  format: FrameFormat;
  /** Width from the image header, before EXIF orientation, px. */
  width: number;
  /** Height from the image header, before EXIF orientation, px. */
  height: number;
  /** Capture time from the JSON `ts` field, epoch ms; absent for raw payloads or when not sent. */
  ts?: number;
  /** Per-frame prompt from the JSON `prompt` field; absent when not sent. */
  prompt?: string;
  /** JSON `force` field: process the frame even if change gating would skip it; default false. */
  force: boolean;
  /** What sharp read from the header, so that preprocessing need not read it again. */
  header: FrameHeader;
}

/** The header facts preprocessing needs. */
export interface FrameHeader {
  /** width after EXIF orientation, px */
  orientedWidth: number;
  /** height after EXIF orientation, px */
  orientedHeight: number;
  hasAlpha: boolean;
  /** libvips interpretation, e.g. 'srgb', 'b-w', 'cmyk' */
  space: string;
  channels: number;
}

/** Why a payload was refused. `reason` is short (< 200 chars) and never quotes payload bytes. */
export interface FrameRejection {
  ok: false;
  code: FrameRejectCode;
  reason: string;
}

export type FrameDecodeResult = DecodedFrame | FrameRejection;

/** Limits applied before any pixel is decoded. */
export interface FrameLimits {
  /** Largest accepted encoded image, bytes (after base64 decoding for JSON payloads). No default. */
  maxBytes: number;
  /** Largest accepted width x height from the image header, pixels; guards against decompression bombs. No default. */
  maxPixels: number;
}

/** Options of {@link decodeFramePayload}. */
export interface FrameDecodeOptions {
  /** Aborts before the header is parsed by sharp; rejects with the signal's reason. Default: none. */
  signal?: AbortSignal;
}

const MAX_REASON_LENGTH = 199;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function reject(code: FrameRejectCode, reason: string): FrameRejection {
  return { ok: false, code, reason: reason.slice(0, MAX_REASON_LENGTH) };
}

function startsWith(bytes: Uint8Array, sig: readonly number[], at = 0): boolean {
  if (bytes.length < at + sig.length) return false;
  return sig.every((b, i) => bytes[at + i] === b);
}

function ascii(bytes: Uint8Array, at: number, length: number): string {
  const n = Math.min(length, bytes.length - at);
  // Past the end: an MQTT payload is often a view at the end of a larger socket buffer, and an offset
  // beyond that buffer would throw (a 3-byte "GIF" frame used to fail as frame-failed, not not-image).
  if (n <= 0) return '';
  return Buffer.from(bytes.buffer, bytes.byteOffset + at, n).toString('latin1');
}

/** Sniffed container: an accepted format, a known but unsupported one (by name), or unknown. */
export type Sniffed =
  | { kind: 'ok'; format: FrameFormat }
  | { kind: 'unsupported'; name: string }
  | { kind: 'unknown' };

/** Identifies an image by its magic number. Pure. */
export function sniffImage(bytes: Uint8Array): Sniffed {
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return { kind: 'ok', format: 'jpeg' };
  if (startsWith(bytes, PNG_SIGNATURE)) return { kind: 'ok', format: 'png' };
  if (ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WEBP') return { kind: 'ok', format: 'webp' };
  const head6 = ascii(bytes, 0, 6);
  if (head6 === 'GIF87a' || head6 === 'GIF89a') return { kind: 'unsupported', name: 'GIF' };
  if (ascii(bytes, 0, 2) === 'BM' && bytes.length >= 26) return { kind: 'unsupported', name: 'BMP' };
  if (startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])) {
    return { kind: 'unsupported', name: 'TIFF' };
  }
  if (ascii(bytes, 4, 4) === 'ftyp') {
    const brand = ascii(bytes, 8, 4);
    return { kind: 'unsupported', name: brand.startsWith('avi') ? 'AVIF' : 'HEIF/MP4' };
  }
  if (startsWith(bytes, [0xff, 0x0a]) || ascii(bytes, 4, 4) === 'JXL ')
    return { kind: 'unsupported', name: 'JPEG XL' };
  return { kind: 'unknown' };
}

/**
 * Reads width and height straight from the container header, without sharp. Pure and O(header).
 * This catches decompression bombs even when the payload is only a header (libpng refuses to report
 * the size of a PNG with no image data, so sharp's metadata() alone would call it corrupt instead).
 * Returns undefined when the header is not where it should be; sharp then has the last word.
 */
export function readHeaderSize(
  bytes: Uint8Array,
  format: FrameFormat,
): { width: number; height: number } | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (format === 'png') {
    if (buf.length < 24 || ascii(buf, 12, 4) !== 'IHDR') return undefined;
    return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }
  if (format === 'webp') {
    const chunk = ascii(buf, 12, 4);
    if (chunk === 'VP8X' && buf.length >= 30) {
      return { width: buf.readUIntLE(24, 3) + 1, height: buf.readUIntLE(27, 3) + 1 };
    }
    if (chunk === 'VP8 ' && buf.length >= 30) {
      return { width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff };
    }
    if (chunk === 'VP8L' && buf.length >= 25 && buf[20] === 0x2f) {
      const bits = buf.readUInt32LE(21);
      return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
    }
    return undefined;
  }
  // JPEG: walk the marker segments up to the first start-of-frame.
  let i = 2;
  while (i + 9 < buf.length) {
    if (buf[i] !== 0xff) return undefined;
    const marker = buf[i + 1]!;
    if (marker === 0xff) {
      i += 1;
      continue;
    }
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) return { width: buf.readUInt16BE(i + 7), height: buf.readUInt16BE(i + 5) };
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      i += 2;
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return undefined;
    i += 2 + buf.readUInt16BE(i + 2);
  }
  return undefined;
}

function checkPixels(width: number, height: number, limits: FrameLimits): FrameRejection | undefined {
  if (width <= 0 || height <= 0) return reject('corrupt', `image header has zero size (${width}x${height})`);
  const pixels = width * height;
  if (pixels > limits.maxPixels) {
    return reject(
      'too-many-pixels',
      `image is ${width}x${height} = ${pixels} px, over the ${limits.maxPixels} px limit`,
    );
  }
  return undefined;
}

type Envelope = { image: Buffer; ts?: number; prompt?: string; force: boolean };

function parseJsonEnvelope(bytes: Uint8Array, limits: FrameLimits): Envelope | FrameRejection {
  const envelope = parseMediaEnvelope(bytes, 'image', limits.maxBytes);
  if ('code' in envelope) return reject(envelope.code, envelope.reason);
  const out: Envelope = { image: envelope.bytes, force: false };
  if (envelope.ts !== undefined) out.ts = envelope.ts;
  if (envelope.prompt !== undefined) out.prompt = envelope.prompt;
  const force = envelope.doc.force;
  if (force !== undefined && force !== null) {
    if (typeof force !== 'boolean') return reject('bad-field', 'JSON "force" must be a boolean');
    out.force = force;
  }
  return out;
}

function firstNonSpace(bytes: Uint8Array): number | undefined {
  for (const b of bytes) {
    if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return b;
  }
  return undefined;
}

/**
 * Decodes one `cameras/<camera>/frame` payload: raw JPEG/PNG/WebP bytes, or a JSON envelope
 * `{"image": base64, "ts"?, "prompt"?, "force"?}`. Checks size limits and reads only the image header
 * (never the pixels), so a decompression bomb is refused before anything is allocated for it.
 * Never throws for bad input; rejects only when `signal` aborts.
 */
export async function decodeFramePayload(
  payload: Uint8Array,
  limits: FrameLimits,
  options: FrameDecodeOptions = {},
): Promise<FrameDecodeResult> {
  if (payload.length === 0) return reject('empty', 'payload is empty');
  let envelope: Envelope;
  if (firstNonSpace(payload) === 0x7b /* { */) {
    const parsed = parseJsonEnvelope(payload, limits);
    if ('ok' in parsed) return parsed;
    envelope = parsed;
  } else {
    envelope = { image: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), force: false };
  }
  const { image } = envelope;
  if (image.length > limits.maxBytes) {
    return reject('too-large', `image is ${image.length} bytes, over the ${limits.maxBytes} byte limit`);
  }
  const sniffed = sniffImage(image);
  if (sniffed.kind === 'unsupported') {
    return reject(
      'unsupported-format',
      `${sniffed.name} images are not supported (accepted: JPEG, PNG, WebP)`,
    );
  }
  if (sniffed.kind === 'unknown') {
    return reject('not-image', `${image.length} bytes with no JPEG, PNG or WebP signature`);
  }
  const { format } = sniffed;
  const size = readHeaderSize(image, format);
  if (size) {
    const bad = checkPixels(size.width, size.height, limits);
    if (bad) return bad;
  }
  options.signal?.throwIfAborted();
  let width: number;
  let height: number;
  let header: FrameHeader;
  try {
    // metadata() parses the header only; limitInputPixels makes sharp refuse a bomb on its own too.
    const meta = await sharp(image, { limitInputPixels: limits.maxPixels }).metadata();
    width = meta.width;
    height = meta.height;
    header = {
      orientedWidth: meta.autoOrient.width,
      orientedHeight: meta.autoOrient.height,
      hasAlpha: meta.hasAlpha,
      space: meta.space,
      channels: meta.channels,
    };
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return reject('corrupt', `${format} header could not be read: ${message.slice(0, 80)}`);
  }
  const bad = checkPixels(width, height, limits);
  if (bad) return bad;
  const result: DecodedFrame = { ok: true, image, format, width, height, force: envelope.force, header };
  if (envelope.ts !== undefined) result.ts = envelope.ts;
  if (envelope.prompt !== undefined) result.prompt = envelope.prompt;
  return result;
}
