/**
 * How much a camera frame changed, scored on small grayscale copies (e.g. 32x32, made elsewhere with sharp).
 * Pure, allocation-light typed-array code: no tensors, no I/O.
 */

/** A small downsampled grayscale copy of a frame: `width * height` bytes, row-major, 0 = black. */
export interface GrayImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Tuning for {@link changeScore}. */
export interface ChangeScoreOptions {
  /**
   * Noise floor in grey levels (0-255): a pixel counts as changed only when its brightness-corrected
   * absolute difference is strictly above this. Default 12 (about 5% of full scale), which sensor noise
   * and JPEG ringing on a downsampled copy stay under.
   */
  noiseFloor?: number;
}

/** Default {@link ChangeScoreOptions.noiseFloor}, in grey levels. */
export const DEFAULT_NOISE_FLOOR = 12;

const OFFSET = 255; // differences run from -255 to 255; histogram bin = difference + OFFSET
const histogram = new Uint32Array(2 * OFFSET + 1);

/** Throws unless `image` is a well-formed {@link GrayImage}. */
export function assertGrayImage(image: GrayImage, name = 'image'): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`${name}: width and height must be non-negative integers, got ${width}x${height}`);
  }
  if (data.length !== width * height) {
    throw new RangeError(
      `${name}: expected ${width * height} bytes for ${width}x${height}, got ${data.length}`,
    );
  }
}

/** True when the two images have the same width and height. */
export function sameSize(a: GrayImage, b: GrayImage): boolean {
  return a.width === b.width && a.height === b.height;
}

/**
 * Change score in [0, 1]: the fraction of pixels whose absolute difference exceeds the noise floor after the
 * global brightness change has been taken out.
 *
 * The global change is the MEDIAN per-pixel difference `b - a` (not the mean): a cloud or an auto-exposure
 * step shifts every pixel alike and so scores ~0, while an object covering less than half the frame neither
 * moves the median nor gets partly cancelled by it, as it would with the mean. Identical images score 0.
 *
 * @throws RangeError when the images are malformed or differ in size (the caller decides what a resolution
 *   change means; {@link FrameGate} treats it as a full change).
 */
export function changeScore(a: GrayImage, b: GrayImage, options: ChangeScoreOptions = {}): number {
  const noiseFloor = options.noiseFloor ?? DEFAULT_NOISE_FLOOR;
  if (!(noiseFloor >= 0)) throw new RangeError(`noiseFloor must be >= 0, got ${noiseFloor}`);
  assertGrayImage(a, 'a');
  assertGrayImage(b, 'b');
  if (!sameSize(a, b)) {
    throw new RangeError(`image sizes differ: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
  }
  const pa = a.data;
  const pb = b.data;
  const n = pa.length;
  if (n === 0) return 0;

  // Lower median of the signed differences, by histogram: O(n + 511), exact for integer grey levels.
  histogram.fill(0);
  for (let i = 0; i < n; i++) histogram[(pb[i] as number) - (pa[i] as number) + OFFSET]!++;
  const rank = (n - 1) >> 1;
  let seen = 0;
  let median = -OFFSET;
  for (let bin = 0; bin < histogram.length; bin++) {
    seen += histogram[bin]!;
    if (seen > rank) {
      median = bin - OFFSET;
      break;
    }
  }

  let changed = 0;
  for (let i = 0; i < n; i++) {
    const residual = (pb[i] as number) - (pa[i] as number) - median;
    if (residual > noiseFloor || residual < -noiseFloor) changed++;
  }
  return changed / n;
}
