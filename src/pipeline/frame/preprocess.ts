import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import type { FrameHeader } from './decode.js';

/** Model input edge lengths supported by the vision encoder, px. */
export type ModelInputSize = 256 | 512 | 768;

/** Options of {@link preprocessFrame}. */
export interface PreprocessOptions {
  /** Edge of the square model input, px. No default. */
  size: ModelInputSize;
  /** 'crop': cover the square and cut the overflow, centred; 'letterbox': fit inside with black bars. No default. */
  fit: 'crop' | 'letterbox';
  /** Longest side of the thumbnail of the whole frame, px (a positive integer); default 160. */
  thumbnailSize?: number;
  /** Edge of the square grayscale copy used for change gating, px (a positive integer); default 32. */
  graySize?: number;
  /** JPEG quality of the model input and thumbnail, 1-100; default 85. */
  jpegQuality?: number;
  /** Largest width x height sharp will decode, pixels; a larger image rejects with code 'too-many-pixels'. No default. */
  limitInputPixels: number;
  /** Checked between pipeline stages (sharp itself cannot be interrupted); rejects with the signal's reason. Default: none. */
  signal?: AbortSignal;
  /** The header as decodeFramePayload read it; saves reading it again. Default: read here. */
  header?: FrameHeader | undefined;
}

/** Everything derived from one frame. */
export interface PreprocessedFrame {
  /** JPEG, size x size, EXIF orientation applied, metadata stripped. */
  model: Buffer;
  /** JPEG of the whole frame, longest side thumbnailSize, metadata stripped. */
  thumbnail: Buffer;
  /** Width of the source after EXIF orientation, px. */
  width: number;
  /** Height of the source after EXIF orientation, px. */
  height: number;
  /** Small grayscale copy of the whole frame (aspect not kept), one byte per pixel, row-major. */
  gray: { width: number; height: number; data: Uint8Array };
  timings: {
    /** Header read plus the single decode (with shrink-on-load) to the working copy, ms. */
    decodeMs: number;
    /** Whole call, ms. */
    totalMs: number;
  };
}

/** Why {@link preprocessFrame} could not decode a frame; `code` maps onto the frame route's reject codes. */
export class FramePreprocessError extends Error {
  override readonly name = 'FramePreprocessError';
  constructor(
    readonly code: 'corrupt' | 'too-many-pixels',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * libvips failOn level. 'error' rejects truncated data (a frame cut short by a flaky link, which would
 * otherwise come out grey-filled and trip change gating) and decoder errors, but tolerates mere warnings
 * such as stray bytes between markers or a damaged EXIF block, which cheap cameras emit on frames that
 * decode fine. 'warning' (sharp's default) would drop those good frames; 'truncated' would pass
 * frames with broken entropy data; 'none' would pass everything.
 */
const FAIL_ON = 'error' as const;

// Every camera frame is new: libvips' operation cache (50 MB by default) would only hold memory.
sharp.cache(false);
const BLACK = { r: 0, g: 0, b: 0, alpha: 1 };

function toFrameError(err: unknown): FramePreprocessError {
  const message = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(message)) {
    return new FramePreprocessError('too-many-pixels', `image exceeds the decode pixel limit`, {
      cause: err,
    });
  }
  return new FramePreprocessError('corrupt', `frame could not be decoded: ${message.slice(0, 120)}`, {
    cause: err,
  });
}

/** A frame decoded once into its working copy and the gate's grey copy; nothing encoded yet. */
export interface WorkingFrame {
  /** raw RGB, oriented, shrunk to the smallest size every output can be made from exactly */
  raw: { data: Buffer; width: number; height: number; channels: 1 | 2 | 3 | 4 };
  /** of the source after EXIF orientation, px */
  width: number;
  height: number;
  gray: { width: number; height: number; data: Uint8Array };
  /** header read plus the decode, ms */
  decodeMs: number;
  /** the encoded frame, for a thumbnail larger than the working copy */
  source: Buffer;
  header: FrameHeader;
}

/**
 * Decodes a frame once: one sharp pipeline auto-orients it and shrinks it (using JPEG shrink-on-load) to
 * the smallest working copy the model input can be made from exactly - covering size x size for 'crop',
 * fitting inside it for 'letterbox', never enlarged - kept as raw RGB, plus the gate's grey copy made from
 * it. Every frame pays this, so it is no larger than the model needs; only a frame the gate accepts goes on
 * to {@link encodeFrame}.
 */
export async function decodeFrame(image: Buffer, options: PreprocessOptions): Promise<WorkingFrame> {
  const started = performance.now();
  const { size, fit, limitInputPixels, signal } = options;
  signal?.throwIfAborted();
  let header: FrameHeader;
  let raw: { data: Buffer; info: OutputInfo };
  try {
    const source = sharp(image, { failOn: FAIL_ON, limitInputPixels });
    header = options.header ?? headerOf(await source.metadata());
    signal?.throwIfAborted();
    const pipeline = source
      .rotate()
      .resize(size, size, { fit: fit === 'crop' ? 'outside' : 'inside', withoutEnlargement: true });
    raw = await toSrgb(pipeline, header).raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw toFrameError(err);
  }
  signal?.throwIfAborted();
  const { info } = raw;
  return {
    raw: { data: raw.data, width: info.width, height: info.height, channels: info.channels },
    width: header.orientedWidth,
    height: header.orientedHeight,
    // A box average of the working copy: cheaper in plain code than another sharp pipeline.
    gray: grayCopy(raw.data, info.width, info.height, info.channels, options.graySize ?? 32),
    decodeMs: performance.now() - started,
    source: image,
    header,
  };
}

/** Flattens alpha onto black and converts to 3-band sRGB, only where the source needs it. */
function toSrgb(pipeline: Sharp, header: FrameHeader): Sharp {
  let out = pipeline;
  if (header.hasAlpha) out = out.flatten({ background: BLACK });
  if (header.space !== 'srgb' || header.channels !== 3) out = out.toColourspace('srgb');
  return out;
}

/**
 * Encodes a decoded frame's model input (size x size, cropped or letterboxed) and its thumbnail, both
 * JPEG without metadata. The model input comes from the working copy, resampled once in all (this step is
 * a pure crop or pad unless the source was smaller than the model input); so does the thumbnail, unless it
 * is larger than the working copy (a 320 thumbnail of a 256 model input): then it is decoded from the
 * source again, which only accepted frames pay.
 */
export async function encodeFrame(
  frame: WorkingFrame,
  options: PreprocessOptions,
): Promise<{ model: Buffer; thumbnail: Buffer }> {
  const { size, fit } = options;
  const quality = options.jpegQuality ?? 85;
  const thumbnailSize = options.thumbnailSize ?? 160;
  const { data, width, height, channels } = frame.raw;
  const base = sharp(data, { raw: { width, height, channels } });
  const [model, thumbnail] = await Promise.all([
    base
      .clone()
      .resize(
        size,
        size,
        fit === 'crop' ? { fit: 'cover', position: 'centre' } : { fit: 'contain', background: BLACK },
      )
      .jpeg({ quality })
      .toBuffer(),
    thumbnailOf(frame, thumbnailSize, options.limitInputPixels).jpeg({ quality }).toBuffer(),
  ]);
  options.signal?.throwIfAborted();
  return { model, thumbnail };
}

/** A pipeline that ends in the thumbnail's pixels: from the working copy when it is large enough. */
function thumbnailOf(frame: WorkingFrame, size: number, limitInputPixels: number): Sharp {
  const { data, width, height, channels } = frame.raw;
  const fromWorking = Math.max(width, height) >= size || (width === frame.width && height === frame.height); // the working copy is the whole source
  const pipeline = fromWorking
    ? sharp(data, { raw: { width, height, channels } })
    : toSrgb(sharp(frame.source, { failOn: FAIL_ON, limitInputPixels }).rotate(), frame.header);
  return pipeline.resize(size, size, { fit: 'inside', withoutEnlargement: true });
}

/** Turns one encoded frame into the model input, a thumbnail and a grayscale gating copy (both steps). */
export async function preprocessFrame(image: Buffer, options: PreprocessOptions): Promise<PreprocessedFrame> {
  const started = performance.now();
  const frame = await decodeFrame(image, options);
  const { model, thumbnail } = await encodeFrame(frame, options);
  return {
    model,
    thumbnail,
    width: frame.width,
    height: frame.height,
    gray: frame.gray,
    timings: { decodeMs: frame.decodeMs, totalMs: performance.now() - started },
  };
}

function headerOf(meta: Metadata): FrameHeader {
  return {
    orientedWidth: meta.autoOrient.width,
    orientedHeight: meta.autoOrient.height,
    hasAlpha: meta.hasAlpha,
    space: meta.space,
    channels: meta.channels,
  };
}

/**
 * A size x size grey copy of an interleaved 8-bit RGB(A) image (aspect not kept): each output pixel is the
 * mean luma (Rec. 601 weights) of the source box it covers, sampled on every other row and column where
 * the box is 4 or more pixels across (a quarter of the work; the gate compares coarse shapes).
 */
export function grayCopy(
  data: Uint8Array,
  width: number,
  height: number,
  channels: number,
  size: number,
): { width: number; height: number; data: Uint8Array } {
  const out = new Uint8Array(size * size);
  const stepX = width >= 4 * size ? 2 : 1;
  const stepY = height >= 4 * size ? 2 : 1;
  for (let oy = 0; oy < size; oy++) {
    const y0 = Math.floor((oy * height) / size);
    const y1 = Math.max(y0 + 1, Math.floor(((oy + 1) * height) / size));
    for (let ox = 0; ox < size; ox++) {
      const x0 = Math.floor((ox * width) / size);
      const x1 = Math.max(x0 + 1, Math.floor(((ox + 1) * width) / size));
      let sum = 0;
      let n = 0;
      for (let y = y0; y < y1; y += stepY) {
        let i = (y * width + x0) * channels;
        for (let x = x0; x < x1; x += stepX, i += stepX * channels, n++) {
          sum += 77 * data[i]! + 150 * data[i + 1]! + 29 * data[i + 2]!;
        }
      }
      out[oy * size + ox] = Math.round(sum / (n * 256));
    }
  }
  return { width: size, height: size, data: out };
}
