import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { FramePreprocessError, grayCopy, preprocessFrame } from '../../../src/pipeline/frame/preprocess.js';

const LIMIT = 4096 * 4096;
type Rgb = [number, number, number];

async function pixelAt(jpeg: Buffer, x: number, y: number): Promise<Rgb> {
  const { data, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

function near(actual: Rgb, expected: Rgb, tolerance = 40): boolean {
  return actual.every((v, i) => Math.abs(v - expected[i]!) <= tolerance);
}

const RED: Rgb = [255, 0, 0];
const GREEN: Rgb = [0, 255, 0];
const BLUE: Rgb = [0, 0, 255];
const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];

/** Three vertical bands: red | green | blue. */
async function bandsJpeg(width: number, height: number): Promise<Buffer> {
  const band = Math.floor(width / 3);
  const tile = (c: Rgb, w: number) =>
    sharp({ create: { width: w, height, channels: 3, background: { r: c[0], g: c[1], b: c[2] } } })
      .png()
      .toBuffer();
  return sharp({ create: { width, height, channels: 3, background: { r: 0, g: 0, b: 255 } } })
    .composite([
      { input: await tile(RED, band), left: 0, top: 0 },
      { input: await tile(GREEN, band), left: band, top: 0 },
    ])
    .jpeg({ quality: 95 })
    .toBuffer();
}

function white(width: number, height: number) {
  return sharp({ create: { width, height, channels: 3, background: { r: 255, g: 255, b: 255 } } });
}

describe('preprocessFrame: outputs', () => {
  it.each([256, 512, 768] as const)('crop and letterbox both give a %i square model input', async (size) => {
    const jpeg = await bandsJpeg(1280, 720);
    for (const fit of ['crop', 'letterbox'] as const) {
      const out = await preprocessFrame(jpeg, { size, fit, limitInputPixels: LIMIT });
      const meta = await sharp(out.model).metadata();
      expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', size, size]);
      expect(out.width).toBe(1280);
      expect(out.height).toBe(720);
    }
  });

  it('crop keeps the centre of the frame', async () => {
    const out = await preprocessFrame(await bandsJpeg(1280, 720), {
      size: 256,
      fit: 'crop',
      limitInputPixels: LIMIT,
    });
    // 720x720 centre crop of 1280 wide spans x 280..1000: red band (0..426) at the left edge, blue at the right.
    expect(near(await pixelAt(out.model, 128, 128), GREEN)).toBe(true);
    expect(near(await pixelAt(out.model, 10, 128), RED)).toBe(true);
    expect(near(await pixelAt(out.model, 250, 128), BLUE)).toBe(true);
  });

  it('letterbox pads with black bars and keeps the whole frame', async () => {
    const jpeg = await white(1280, 720).jpeg().toBuffer();
    const out = await preprocessFrame(jpeg, { size: 512, fit: 'letterbox', limitInputPixels: LIMIT });
    // 1280x720 inside 512: 512x288 picture, 112 px bars above and below.
    expect(near(await pixelAt(out.model, 256, 20), BLACK)).toBe(true);
    expect(near(await pixelAt(out.model, 256, 500), BLACK)).toBe(true);
    expect(near(await pixelAt(out.model, 256, 256), WHITE)).toBe(true);
    expect(near(await pixelAt(out.model, 5, 256), WHITE)).toBe(true);
  });

  it('thumbnail has the configured longest side and gray is a small single-channel copy', async () => {
    const jpeg = await white(1280, 720).jpeg().toBuffer();
    const out = await preprocessFrame(jpeg, { size: 256, fit: 'crop', limitInputPixels: LIMIT });
    const thumb = await sharp(out.thumbnail).metadata();
    expect([thumb.format, thumb.width, thumb.height]).toEqual(['jpeg', 160, 90]);
    expect(out.gray.width).toBe(32);
    expect(out.gray.height).toBe(32);
    expect(out.gray.data.length).toBe(32 * 32);
    expect(Math.min(...out.gray.data)).toBeGreaterThan(240);

    const custom = await preprocessFrame(jpeg, {
      size: 256,
      fit: 'letterbox',
      thumbnailSize: 320,
      graySize: 16,
      limitInputPixels: LIMIT,
    });
    expect((await sharp(custom.thumbnail).metadata()).width).toBe(320);
    expect(custom.gray.data.length).toBe(16 * 16);
  });

  it('accepts PNG (with alpha) and WebP, and strips metadata', async () => {
    const png = await sharp({ create: { width: 400, height: 300, channels: 4, background: '#00ff0080' } })
      .png()
      .toBuffer();
    const webp = await white(400, 300).webp().withMetadata({ orientation: 1 }).toBuffer();
    for (const input of [png, webp]) {
      const out = await preprocessFrame(input, { size: 256, fit: 'letterbox', limitInputPixels: LIMIT });
      const meta = await sharp(out.model).metadata();
      expect([meta.width, meta.height, meta.channels]).toEqual([256, 256, 3]);
      expect(meta.exif).toBeUndefined();
      expect(meta.orientation).toBeUndefined();
    }
  });

  it('auto-orients an EXIF orientation 6 JPEG', async () => {
    // 300x200 stored, red marker in the stored top-left; orientation 6 = rotate 90° clockwise to display.
    const marker = await sharp({ create: { width: 60, height: 60, channels: 3, background: '#ff0000' } })
      .png()
      .toBuffer();
    const jpeg = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#0000ff' } })
      .composite([{ input: marker, left: 0, top: 0 }])
      .jpeg({ quality: 95 })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    expect((await sharp(jpeg).metadata()).orientation).toBe(6);

    const out = await preprocessFrame(jpeg, { size: 256, fit: 'letterbox', limitInputPixels: LIMIT });
    expect([out.width, out.height]).toEqual([200, 300]);
    const thumb = await sharp(out.thumbnail).metadata();
    expect([thumb.width, thumb.height, thumb.orientation]).toEqual([107, 160, undefined]);
    // The marker is now in the displayed top-right corner.
    expect(near(await pixelAt(out.thumbnail, 102, 5), RED)).toBe(true);
    expect(near(await pixelAt(out.thumbnail, 5, 5), BLUE)).toBe(true);
    expect(near(await pixelAt(out.thumbnail, 5, 154), BLUE)).toBe(true);
  });
});

describe('preprocessFrame: hostile input', () => {
  it('rejects a truncated JPEG as corrupt', async () => {
    const noise = Buffer.alloc(640 * 480 * 3);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24;
    const jpeg = await sharp(noise, { raw: { width: 640, height: 480, channels: 3 } })
      .jpeg()
      .toBuffer();
    const half = jpeg.subarray(0, Math.floor(jpeg.length / 2));
    const error = await preprocessFrame(half, { size: 256, fit: 'crop', limitInputPixels: LIMIT }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(FramePreprocessError);
    expect((error as FramePreprocessError).code).toBe('corrupt');
  });

  it('rejects an image over limitInputPixels', async () => {
    const jpeg = await white(1280, 720).jpeg().toBuffer();
    await expect(
      preprocessFrame(jpeg, { size: 256, fit: 'crop', limitInputPixels: 1000 }),
    ).rejects.toMatchObject({
      code: 'too-many-pixels',
    });
  });

  it('rejects garbage as corrupt and honours an aborted signal', async () => {
    await expect(
      preprocessFrame(Buffer.from('definitely not an image'), {
        size: 256,
        fit: 'crop',
        limitInputPixels: LIMIT,
      }),
    ).rejects.toMatchObject({ code: 'corrupt' });
    const jpeg = await white(64, 64).jpeg().toBuffer();
    const controller = new AbortController();
    controller.abort(new Error('shutting down'));
    await expect(
      preprocessFrame(jpeg, { size: 256, fit: 'crop', limitInputPixels: LIMIT, signal: controller.signal }),
    ).rejects.toThrow('shutting down');
  });
});

describe('grayCopy', () => {
  it('averages the luma of each source box, sampled or not', () => {
    // 256x128 RGB: left half black, right half pure green; top rows of the right half white.
    const width = 256;
    const height = 128;
    const data = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      for (let x = width / 2; x < width; x++) {
        const i = (y * width + x) * 3;
        if (y < height / 2) data.set([255, 255, 255], i);
        else data.set([0, 255, 0], i);
      }
    }
    for (const size of [2, 32]) {
      const gray = grayCopy(data, width, height, 3, size);
      expect([gray.width, gray.height, gray.data.length]).toEqual([size, size, size * size]);
      const at = (x: number, y: number) => gray.data[y * size + x]!;
      expect(at(0, 0)).toBe(0);
      expect(at(size - 1, 0)).toBe(255);
      expect(at(size - 1, size - 1)).toBe(Math.round((150 * 255) / 256));
    }
  });
});
