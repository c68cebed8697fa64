/**
 * npm run bench:frames [-- --frames 60 --rounds 5 --size 512]
 *
 * What a camera frame costs on the gateway, side by side with bare sharp on the same frames in the same
 * run. Frames are distinct 1280x720 camera-like JPEGs (textured background, moving objects), processed one
 * at a time as the pipeline does; the paths alternate round by round so all see the same machine load.
 * libvips' operation cache is off everywhere (identical inputs across rounds would otherwise be cached;
 * the daemon turns it off too).
 *
 * - every frame (the goal's comparison): Outpost's header check, one decode with EXIF orientation and
 *   shrink-on-load into the working copy, the 32x32 grey copy and the change score (FrameGate), against
 *   bare sharp decoding and resizing the same JPEG to the model size (raw pixels out). Goal: ratio >= 0.9.
 * - an accepted frame adds the model input and the thumbnail JPEG encodes; shown as the worst case (every
 *   frame accepted) against bare sharp decode + resize + JPEG encode of the model input.
 * Prints frames/s, ms/frame, the ratios and the peak RSS.
 */
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { mulberry32 } from '../src/common/index.js';
import { decodeFramePayload } from '../src/pipeline/frame/decode.js';
import { FrameGate } from '../src/pipeline/frame/frameGate.js';
import { decodeFrame, encodeFrame, type ModelInputSize } from '../src/pipeline/frame/preprocess.js';

const { values } = parseArgs({
  options: {
    frames: { type: 'string', default: '60' },
    rounds: { type: 'string', default: '5' },
    size: { type: 'string', default: '512' },
  },
});
const FRAMES = Number(values.frames);
const ROUNDS = Number(values.rounds);
const SIZE = Number(values.size) as ModelInputSize;
if (![256, 512, 768].includes(SIZE)) throw new Error('--size: 256, 512 or 768');
const WIDTH = 1280;
const HEIGHT = 720;
const LIMITS = { maxBytes: 8 * 1024 * 1024, maxPixels: 25_000_000 };

sharp.cache(false);

/** A textured 1280x720 scene with two objects that move a little each frame. */
async function cameraFrames(count: number): Promise<Buffer[]> {
  const random = mulberry32(11);
  const noise = Buffer.alloc(WIDTH * HEIGHT * 3);
  for (let i = 0; i < noise.length; i++) {
    const x = (i / 3) % WIDTH;
    const y = Math.floor(i / 3 / WIDTH);
    noise[i] = Math.min(255, 60 + ((x >> 3) % 40) + ((y >> 2) % 50) + Math.floor(random() * 30));
  }
  const background = await sharp(noise, { raw: { width: WIDTH, height: HEIGHT, channels: 3 } })
    .png()
    .toBuffer();
  const frames: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const svg = Buffer.from(
      `<svg width="${WIDTH}" height="${HEIGHT}">
        <rect x="${(100 + i * 15) % (WIDTH - 200)}" y="300" width="180" height="120" fill="#c03030"/>
        <circle cx="${900 - ((i * 9) % 600)}" cy="${200 + (i % 20) * 5}" r="60" fill="#2050c0"/>
      </svg>`,
    );
    frames.push(
      await sharp(background)
        .composite([{ input: svg }])
        .jpeg({ quality: 80 })
        .toBuffer(),
    );
  }
  return frames;
}

const OPTIONS = {
  size: SIZE,
  fit: 'letterbox',
  thumbnailSize: 320,
  jpegQuality: 85,
  limitInputPixels: LIMITS.maxPixels,
} as const;

async function bareDecodeResize(frames: readonly Buffer[]): Promise<number> {
  const started = performance.now();
  for (const frame of frames) await sharp(frame).resize(SIZE, SIZE, { fit: 'inside' }).raw().toBuffer();
  return performance.now() - started;
}

async function bareWithJpeg(frames: readonly Buffer[]): Promise<number> {
  const started = performance.now();
  for (const frame of frames) {
    await sharp(frame).resize(SIZE, SIZE, { fit: 'contain' }).jpeg({ quality: 85 }).toBuffer();
  }
  return performance.now() - started;
}

/** Outpost's per-frame path; with `accept`, every frame is also encoded as an accepted one would be. */
async function outpost(
  frames: readonly Buffer[],
  gate: FrameGate,
  t0: number,
  accept: boolean,
): Promise<number> {
  const started = performance.now();
  let t = t0;
  for (const frame of frames) {
    const decoded = await decodeFramePayload(frame, LIMITS);
    if (!decoded.ok) throw new Error(decoded.reason);
    const working = await decodeFrame(decoded.image, { ...OPTIONS, header: decoded.header });
    t += 2000;
    gate.offer('bench', working.gray, t);
    if (accept) await encodeFrame(working, OPTIONS);
  }
  return performance.now() - started;
}

const frames = await cameraFrames(FRAMES);
const meanKb = frames.reduce((sum, f) => sum + f.length, 0) / frames.length / 1024;
console.log(
  `${FRAMES} distinct ${WIDTH}x${HEIGHT} JPEG frames (mean ${meanKb.toFixed(0)} KiB), model input ${SIZE}, ` +
    `${ROUNDS} rounds, sharp ${sharp.versions.sharp} / libvips ${sharp.versions.vips}, concurrency ${sharp.concurrency()}`,
);

// Warm-up: the first pass of each pays for code loading and JIT.
const gate = new FrameGate({ minIntervalMs: 0, cooldownMs: 0 });
await bareDecodeResize(frames.slice(0, 5));
await bareWithJpeg(frames.slice(0, 5));
await outpost(frames.slice(0, 5), gate, 0, true);

const times = {
  bare: [] as number[],
  bareJpeg: [] as number[],
  gate: [] as number[],
  accepted: [] as number[],
};
let peakRss = process.memoryUsage.rss();
for (let round = 0; round < ROUNDS; round++) {
  times.bare.push(await bareDecodeResize(frames));
  times.gate.push(await outpost(frames, gate, (2 * round + 1) * 1e9, false));
  times.bareJpeg.push(await bareWithJpeg(frames));
  times.accepted.push(await outpost(frames, gate, (2 * round + 2) * 1e9, true));
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const line = (name: string, ms: number) =>
  `${name.padEnd(58)} ${((FRAMES * 1000) / ms).toFixed(1).padStart(6)} frames/s  ${(ms / FRAMES).toFixed(2).padStart(6)} ms/frame`;
const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<
  keyof typeof times,
  number
>;
console.log(line('bare sharp: decode + resize', m.bare));
console.log(line('outpost, every frame: check + orient + decode/resize + score', m.gate));
console.log(`ratio, every frame (goal >= 0.9): ${(m.bare / m.gate).toFixed(3)}`);
console.log(line('bare sharp: decode + resize + JPEG', m.bareJpeg));
console.log(line('outpost, every frame accepted: + model JPEG + thumbnail', m.accepted));
console.log(`ratio, every frame accepted (worst case): ${(m.bareJpeg / m.accepted).toFixed(3)}`);
console.log(`gate decisions: ${JSON.stringify(gate.stats().bench)}`);
console.log(
  `peak RSS: ${(Math.max(peakRss, process.resourceUsage().maxRSS * 1024) / 1048576).toFixed(0)} MiB (whole process, frames in memory included)`,
);
