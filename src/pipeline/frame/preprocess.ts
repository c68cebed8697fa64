import sharp, { type OutputInfo } from 'sharp';

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

/**
 * Turns one encoded frame into the model input, a thumbnail and a grayscale gating copy.
 *
 * The frame is decoded exactly once: one sharp pipeline auto-orients it and shrinks it (using JPEG
 * shrink-on-load) to the smallest working copy from which every output is exact - covering size x size
 * for 'crop', fitting inside it for 'letterbox', never enlarged - and keeps that copy as raw RGB. The
 * three outputs are cloned from that raw copy in parallel, so the model input is resampled once (the
 * second step is a pure crop or pad unless the source was smaller than the model input).
 */
export async function preprocessFrame(image: Buffer, options: PreprocessOptions): Promise<PreprocessedFrame> {
  const started = performance.now();
  const { size, fit, limitInputPixels, signal } = options;
  const thumbnailSize = options.thumbnailSize ?? 160;
  const graySize = options.graySize ?? 32;
  const quality = options.jpegQuality ?? 85;
  signal?.throwIfAborted();

  const working = Math.max(size, thumbnailSize);
  let width: number;
  let height: number;
  let raw: { data: Buffer; info: OutputInfo };
  try {
    const source = sharp(image, { failOn: FAIL_ON, limitInputPixels });
    const meta = await source.metadata();
    width = meta.autoOrient.width;
    height = meta.autoOrient.height;
    signal?.throwIfAborted();
    let pipeline = source
      .rotate()
      .resize(working, working, { fit: fit === 'crop' ? 'outside' : 'inside', withoutEnlargement: true });
    // Only pay for these when the source needs them: a camera JPEG is already 3-band sRGB.
    if (meta.hasAlpha) pipeline = pipeline.flatten({ background: BLACK });
    if (meta.space !== 'srgb' || meta.channels !== 3) pipeline = pipeline.toColourspace('srgb');
    raw = await pipeline.raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    if (signal?.aborted) throw signal.reason;
    throw toFrameError(err);
  }
  const decodeMs = performance.now() - started;
  signal?.throwIfAborted();

  const { info } = raw;
  const base = sharp(raw.data, { raw: { width: info.width, height: info.height, channels: info.channels } });
  const [model, thumbnail, gray] = await Promise.all([
    base
      .clone()
      .resize(
        size,
        size,
        fit === 'crop' ? { fit: 'cover', position: 'centre' } : { fit: 'contain', background: BLACK },
      )
      .jpeg({ quality })
      .toBuffer(),
    base.clone().resize(thumbnailSize, thumbnailSize, { fit: 'inside' }).jpeg({ quality }).toBuffer(),
    base
      .clone()
      .greyscale()
      .resize(graySize, graySize, { fit: 'fill' })
      .extractChannel(0)
      .raw()
      .toBuffer({ resolveWithObject: true }),
  ]);
  signal?.throwIfAborted();
  return {
    model,
    thumbnail,
    width,
    height,
    gray: {
      width: gray.info.width,
      height: gray.info.height,
      data: new Uint8Array(gray.data.buffer, gray.data.byteOffset, gray.data.byteLength),
    },
    timings: { decodeMs, totalMs: performance.now() - started },
  };
}
