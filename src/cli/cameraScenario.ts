/**
 * Deterministic generator of camera frames for `outpost simulate`: per camera a textured static scene in
 * which a few objects move across, appear and stay, or appear for a while and leave, with long quiet
 * stretches in between.
 *
 * Frame `i` of a camera shows the scene at `i / fps` seconds. The layout (the ground truth) is a pure
 * function of the options and that time, so any frame can be produced on its own and replayed exactly;
 * only the JPEG encoding goes through sharp. With `noise` 0 an unchanged layout gives byte-identical JPEG,
 * which is exactly what the gateway's change gate must drop.
 */
import sharp from 'sharp';
import { gaussian, mulberry32 } from '../common/index.js';

export interface CameraScenarioOptions {
  /** Number of cameras, named `<prefix>-1..N`. Positive integer; default 1. */
  cameras?: number;
  /** Camera name prefix; must not contain `/`, `+` or `#`. Default `'cam'`. */
  prefix?: string;
  /** Frame width in pixels, integer 16-8192. Default 1280. */
  width?: number;
  /** Frame height in pixels, integer 16-8192. Default 720. */
  height?: number;
  /** Frames per second (> 0, fractions allowed): frame `i` shows the scene at `i / fps` s. Default 1. */
  fps?: number;
  /** Seed of the PRNG (any finite number; used as an unsigned 32-bit integer). Default 1. */
  seed?: number;
  /** JPEG quality, integer 1-100. Default 80. */
  quality?: number;
  /**
   * Sensor noise: standard deviation, in grey levels (0-64), of the per-pixel noise added to each frame.
   * Default 0: an unchanged scene then gives byte-identical frames; 1-3 is a good camera.
   */
  noise?: number;
  /**
   * Length of one scene cycle in seconds (> 0). In each cycle one object crosses the frame (about
   * 5-28 % into the cycle) and one appears for a while (about 45-60 %); in the first cycle another one
   * arrives (about 70-75 %) and then stays put for good. The rest is quiet. Default 60.
   */
  cycleSeconds?: number;
}

/** How a {@link SceneObject} behaves over time. */
export type ObjectBehaviour = 'moving' | 'still' | 'transient';

/** Ground truth for one object in one frame. */
export interface SceneObject {
  label: string;
  behaviour: ObjectBehaviour;
  shape: 'rectangle' | 'ellipse';
  /** fill colour, sRGB; chosen far in brightness from the background */
  colour: readonly [number, number, number];
  /**
   * bounding box in pixels; a moving object's box extends beyond the frame while it enters or leaves, and
   * lies wholly outside it before and after its crossing
   */
  x: number;
  y: number;
  w: number;
  h: number;
  /** present in the scene and at least partly inside the frame */
  visible: boolean;
  /** `visible`, `x` or `y` differ from the previous frame (frame -1 has no visible objects) */
  changed: boolean;
}

/** One rendered frame and its ground truth. */
export interface CameraFrame {
  camera: string;
  /** `cameras/<camera>/frame` */
  topic: string;
  index: number;
  /** scene time of the frame, ms since the scenario's start: `index * 1000 / fps` */
  tMs: number;
  /** JPEG bytes; may be the same Buffer as the previous frame's when nothing changed, so do not modify it */
  jpeg: Buffer;
  /** every object of the camera, visible or not, in drawing order (later ones are drawn over earlier ones) */
  objects: SceneObject[];
  /** some object changed since the previous frame */
  changed: boolean;
}

type Rgb = readonly [number, number, number];

/** Raw RGB pixels, row-major, 3 bytes a pixel. */
interface Raster {
  data: Buffer;
  width: number;
  height: number;
}

interface ObjectSpec {
  label: string;
  behaviour: ObjectBehaviour;
  shape: 'rectangle' | 'ellipse';
  colour: Rgb;
  w: number;
  h: number;
}

interface Camera {
  name: string;
  topic: string;
  seed: number;
  /** drawing order: still, transient, moving */
  objects: [still: ObjectSpec, transient: ObjectSpec, moving: ObjectSpec];
  still: { atMs: number; x: number; y: number };
  /** rendered on first use */
  background: Raster | undefined;
  /** the last encoded frame, reused while the layout stays the same (noise 0 only) */
  last: { key: string; jpeg: Buffer } | undefined;
}

/**
 * Object colours: either dark (luma < 60) or bright (luma > 185), while the background stays within luma
 * 90-160, so every object differs by well over the change score's noise floor (12) from what it covers.
 */
const PALETTE: readonly Rgb[] = [
  [240, 200, 30],
  [25, 35, 110],
  [235, 235, 225],
  [25, 25, 25],
  [130, 15, 15],
  [90, 230, 235],
  [20, 80, 30],
];
const MOVING_LABELS = ['vehicle', 'forklift', 'cart'];
const TRANSIENT_LABELS = ['person', 'worker', 'visitor'];
const STILL_LABELS = ['crate', 'pallet', 'parcel'];
const TOPIC_FORBIDDEN = /[/+#]/;
const MAX_SIDE = 8192;
/** Number of grain levels of the background texture (odd: symmetric around 0). */
const GRAIN_LEVELS = 13;
/** Length of the precomputed noise table; prime, so its repeats do not line up with rows. */
const NOISE_TABLE_LENGTH = 65_521;

export class CameraScenario {
  readonly width: number;
  readonly height: number;
  readonly fps: number;
  readonly #quality: number;
  readonly #cycleMs: number;
  readonly #cameras: Camera[];
  readonly #noise: Int8Array | undefined;

  constructor(options: CameraScenarioOptions = {}) {
    const cameras = options.cameras ?? 1;
    const prefix = options.prefix ?? 'cam';
    const width = options.width ?? 1280;
    const height = options.height ?? 720;
    const fps = options.fps ?? 1;
    const seed = options.seed ?? 1;
    const quality = options.quality ?? 80;
    const noise = options.noise ?? 0;
    const cycleSeconds = options.cycleSeconds ?? 60;

    if (!Number.isInteger(cameras) || cameras < 1) {
      throw new RangeError(`cameras must be a positive integer, got ${cameras}`);
    }
    if (prefix === '' || TOPIC_FORBIDDEN.test(prefix)) {
      throw new RangeError(`camera prefix must be non-empty without '/', '+' or '#', got '${prefix}'`);
    }
    for (const [name, side] of [
      ['width', width],
      ['height', height],
    ] as const) {
      if (!Number.isInteger(side) || side < 16 || side > MAX_SIDE) {
        throw new RangeError(`${name} must be an integer from 16 to ${MAX_SIDE}, got ${side}`);
      }
    }
    if (!(fps > 0 && Number.isFinite(fps))) throw new RangeError(`fps must be a positive number, got ${fps}`);
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    if (!Number.isInteger(quality) || quality < 1 || quality > 100) {
      throw new RangeError(`quality must be an integer from 1 to 100, got ${quality}`);
    }
    if (!(noise >= 0 && noise <= 64)) throw new RangeError(`noise must be from 0 to 64, got ${noise}`);
    if (!(cycleSeconds > 0 && Number.isFinite(cycleSeconds))) {
      throw new RangeError(`cycleSeconds must be a positive number, got ${cycleSeconds}`);
    }

    this.width = width;
    this.height = height;
    this.fps = fps;
    this.#quality = quality;
    this.#cycleMs = cycleSeconds * 1000;
    this.#noise = noise > 0 ? noiseTable(noise, mix(seed >>> 0, 0x6e6f6973)) : undefined;
    this.#cameras = [];
    for (let index = 0; index < cameras; index++) {
      const name = `${prefix}-${index + 1}`;
      this.#cameras.push(this.#camera(name, mix(seed >>> 0, index + 1)));
    }
  }

  /** Camera names, `<prefix>-1..N`; the 0-based position here is the `camera` argument of the methods. */
  get cameras(): readonly string[] {
    return this.#cameras.map((camera) => camera.name);
  }

  /** Ground truth of frame `index` (integer >= 0) of camera `camera` (0-based), without rendering it. */
  layout(camera: number, index: number): SceneObject[] {
    const state = this.#cameraAt(camera);
    checkIndex(index);
    const previous = index === 0 ? undefined : this.#boxes(state, this.#timeOf(index - 1));
    return this.#boxes(state, this.#timeOf(index)).map((box, i) => {
      const before = previous?.[i];
      const changed =
        before === undefined
          ? box.visible
          : box.visible !== before.visible || (box.visible && (box.x !== before.x || box.y !== before.y));
      return { ...box, changed };
    });
  }

  /** Renders frame `index` (integer >= 0) of camera `camera` (0-based) as JPEG, with its ground truth. */
  async frame(camera: number, index: number): Promise<CameraFrame> {
    const state = this.#cameraAt(camera);
    const objects = this.layout(camera, index);
    const frame = {
      camera: state.name,
      topic: state.topic,
      index,
      tMs: this.#timeOf(index),
      objects,
      changed: objects.some((object) => object.changed),
    };
    const key = JSON.stringify(objects.filter((o) => o.visible).map((o) => [o.x, o.y]));
    if (this.#noise === undefined && state.last?.key === key) return { ...frame, jpeg: state.last.jpeg };

    state.background ??= renderBackground(this.width, this.height, mulberry32(state.seed));
    const raster = { ...state.background, data: Buffer.from(state.background.data) };
    for (const object of objects) if (object.visible) draw(raster, object);
    if (this.#noise !== undefined) addNoise(raster.data, this.#noise, mix(state.seed, index));
    const jpeg = await sharp(raster.data, { raw: { width: this.width, height: this.height, channels: 3 } })
      .jpeg({ quality: this.#quality })
      .toBuffer();
    if (this.#noise === undefined) state.last = { key, jpeg };
    return { ...frame, jpeg };
  }

  #timeOf(index: number): number {
    return (index * 1000) / this.fps;
  }

  #cameraAt(camera: number): Camera {
    const state = this.#cameras[camera];
    if (!Number.isInteger(camera) || state === undefined) {
      throw new RangeError(`camera must be an integer from 0 to ${this.#cameras.length - 1}, got ${camera}`);
    }
    return state;
  }

  /** The per-camera constants: objects, colours and the still object's arrival. */
  #camera(name: string, seed: number): Camera {
    const random = mulberry32(seed);
    const { width: W, height: H } = this;
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
    const colours = shuffle([...PALETTE], random);
    const between = (low: number, high: number) => low + (high - low) * random();
    // Each object covers at least 3.5 % of the frame (ellipses included), well above the gate's default
    // threshold of 2 %.
    const still: ObjectSpec = {
      label: pick(STILL_LABELS),
      behaviour: 'still',
      shape: random() < 0.5 ? 'rectangle' : 'ellipse',
      colour: colours[0] as Rgb,
      w: Math.round(between(0.18, 0.25) * W),
      h: Math.round(between(0.25, 0.35) * H),
    };
    const transient: ObjectSpec = {
      label: pick(TRANSIENT_LABELS),
      behaviour: 'transient',
      shape: 'ellipse',
      colour: colours[1] as Rgb,
      w: Math.round(between(0.13, 0.18) * W),
      h: Math.round(between(0.35, 0.45) * H),
    };
    const moving: ObjectSpec = {
      label: pick(MOVING_LABELS),
      behaviour: 'moving',
      shape: 'rectangle',
      colour: colours[2] as Rgb,
      w: Math.round(between(0.15, 0.25) * W),
      h: Math.round(between(0.2, 0.35) * H),
    };
    return {
      name,
      topic: `cameras/${name}/frame`,
      seed,
      objects: [still, transient, moving],
      still: {
        atMs: between(0.7, 0.75) * this.#cycleMs,
        x: Math.round(between(0, W - still.w)),
        y: Math.round(between(0.3 * H, H - still.h)),
      },
      background: undefined,
      last: undefined,
    };
  }

  /** Where each object is at scene time `tMs`; the cycle's choices are drawn from its own seed. */
  #boxes(camera: Camera, tMs: number): Omit<SceneObject, 'changed'>[] {
    const { width: W, height: H } = this;
    const cycleMs = this.#cycleMs;
    const cycle = Math.floor(tMs / cycleMs);
    const inCycle = tMs - cycle * cycleMs;
    const random = mulberry32(mix(camera.seed, cycle + 1));
    const between = (low: number, high: number) => low + (high - low) * random();
    const [still, transient, moving] = camera.objects;

    const crossFrom = between(0.05, 0.1) * cycleMs;
    const crossMs = between(0.12, 0.18) * cycleMs;
    const leftToRight = random() < 0.5;
    const laneY = Math.round(between(0.35 * H, H - moving.h));
    const visitFrom = between(0.45, 0.5) * cycleMs;
    const visitMs = between(0.06, 0.1) * cycleMs;
    const visitX = Math.round(between(0, W - transient.w));
    const visitY = Math.round(between(0.2 * H, H - transient.h));

    const progress = (inCycle - crossFrom) / crossMs;
    const crossing = progress >= 0 && progress < 1;
    const travelled = Math.round((W + moving.w) * progress);
    const movingX = leftToRight ? travelled - moving.w : W - travelled;

    const box = (spec: ObjectSpec, present: boolean, x: number, y: number) => ({
      label: spec.label,
      behaviour: spec.behaviour,
      shape: spec.shape,
      colour: spec.colour,
      x,
      y,
      w: spec.w,
      h: spec.h,
      visible: present && x < W && x + spec.w > 0 && y < H && y + spec.h > 0,
    });
    return [
      box(still, tMs >= camera.still.atMs, camera.still.x, camera.still.y),
      box(transient, inCycle >= visitFrom && inCycle < visitFrom + visitMs, visitX, visitY),
      box(moving, crossing, movingX, laneY),
    ];
  }
}

/** Draws an object; a rectangle gets a rim and a band (a windscreen, a label), edges as real ones have. */
function draw(raster: Raster, object: SceneObject): void {
  const { x, y, w, h, colour } = object;
  if (object.shape === 'ellipse') {
    fillEllipse(raster, x, y, w, h, colour);
    return;
  }
  fillRect(raster, x, y, w, h, shade(colour, 0.5));
  fillRect(raster, x + 3, y + 3, w - 6, h - 6, colour);
  fillRect(raster, x + 3, y + Math.round(h * 0.2), w - 6, Math.round(h * 0.12), shade(colour, 0.3));
}

/**
 * The static scene: a wall and a floor in gentle gradients, a few fixed fixtures, shelf lines, a floor
 * marking and a mild texture, so JPEG sizes are those of a real camera rather than of a flat fill.
 * Everything stays within luma 90-160 (see {@link PALETTE}).
 */
function renderBackground(width: number, height: number, random: () => number): Raster {
  const raster = { data: Buffer.alloc(width * height * 3), width, height };
  const between = (low: number, high: number) => low + (high - low) * random();
  const tint = (): Rgb => [between(-8, 8), between(-8, 8), between(-8, 8)];
  const grey = (luma: number, t: Rgb): Rgb => [luma + t[0], luma + t[1], luma + t[2]];

  const horizon = Math.round(between(0.35, 0.45) * height);
  const wallTint = tint();
  const floorTint = tint();
  const wallTop = between(130, 142);
  const wallBottom = between(118, 130);
  const floorTop = between(112, 124);
  const floorBottom = between(126, 140);
  for (let y = 0; y < height; y++) {
    const colour =
      y < horizon
        ? grey(wallTop + ((wallBottom - wallTop) * y) / horizon, wallTint)
        : grey(floorTop + ((floorBottom - floorTop) * (y - horizon)) / (height - horizon), floorTint);
    fillRect(raster, 0, y, width, 1, colour);
  }

  // Fixtures on the wall (doors, windows, cabinets), each with a couple of shelf lines.
  const fixtures = 3 + Math.floor(random() * 3);
  for (let i = 0; i < fixtures; i++) {
    const w = Math.round(between(0.06, 0.16) * width);
    const h = Math.round(between(0.25, 0.6) * horizon);
    const x = Math.round(between(0, width - w));
    const y = horizon - h;
    const t = tint();
    fillRect(raster, x, y, w, h, grey(between(108, 148), t));
    for (let line = 1; line <= 2; line++) {
      fillRect(raster, x, y + Math.round((h * line) / 3), w, 3, grey(between(112, 142), t));
    }
  }
  // Round fixtures (lamps, signs) and a floor marking.
  for (let i = 0; i < 2; i++) {
    const d = Math.round(between(0.03, 0.06) * width);
    const x = Math.round(between(0, width - d));
    fillEllipse(raster, x, Math.round(between(0, horizon - d)), d, d, grey(between(138, 150), tint()));
  }
  const markY = Math.round(between(horizon + 0.2 * (height - horizon), height - 0.1 * height));
  fillRect(raster, 0, markY, width, Math.max(2, Math.round(height * 0.01)), grey(150, [4, 2, -8]));

  addTexture(raster, random);
  return raster;
}

/** Smooth blotches (value noise on a 48-pixel grid, +-5) plus fine grain (+-6), the same on every channel. */
function addTexture({ data, width, height }: Raster, random: () => number): void {
  const cell = 48;
  const gridW = Math.ceil(width / cell) + 2;
  const gridH = Math.ceil(height / cell) + 2;
  const grid = new Float32Array(gridW * gridH);
  for (let i = 0; i < grid.length; i++) grid[i] = (random() * 2 - 1) * 5;
  const out = new Uint8ClampedArray(data.buffer, data.byteOffset, data.length);
  let state = Math.floor(random() * 2 ** 32) >>> 0;
  for (let y = 0; y < height; y++) {
    const gy = Math.floor(y / cell);
    const fy = smooth(y / cell - gy);
    for (let x = 0; x < width; x++) {
      const gx = Math.floor(x / cell);
      const fx = smooth(x / cell - gx);
      const i00 = gy * gridW + gx;
      const top = grid[i00]! + (grid[i00 + 1]! - grid[i00]!) * fx;
      const bottom = grid[i00 + gridW]! + (grid[i00 + gridW + 1]! - grid[i00 + gridW]!) * fx;
      // xorshift32: per-pixel grain without the cost of a float PRNG call
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      const grain = ((state >>> 0) % GRAIN_LEVELS) - (GRAIN_LEVELS >> 1);
      const delta = top + (bottom - top) * fy + grain;
      const p = (y * width + x) * 3;
      out[p] = out[p]! + delta;
      out[p + 1] = out[p + 1]! + delta;
      out[p + 2] = out[p + 2]! + delta;
    }
  }
}

function smooth(t: number): number {
  return t * t * (3 - 2 * t);
}

/** Gaussian noise (standard deviation `sd` grey levels) as a table that frames read from a random offset. */
function noiseTable(sd: number, seed: number): Int8Array {
  const normal = gaussian(mulberry32(seed));
  const table = new Int8Array(NOISE_TABLE_LENGTH);
  for (let i = 0; i < table.length; i++) table[i] = Math.max(-127, Math.min(127, Math.round(normal() * sd)));
  return table;
}

/** Adds the table to every byte from a seeded offset; chunked so the hot loop has no wrap-around test. */
function addNoise(pixels: Uint8Array, table: Int8Array, seed: number): void {
  const length = pixels.length;
  let i = 0;
  let j = seed % table.length;
  while (i < length) {
    const end = Math.min(length, i + table.length - j);
    for (; i < end; i++, j++) {
      const value = pixels[i]! + table[j]!;
      pixels[i] = value < 0 ? 0 : Math.min(value, 255);
    }
    j = 0;
  }
}

/** Fills the part of the rectangle that lies inside the raster, row by row from one prepared row. */
function fillRect(raster: Raster, x: number, y: number, w: number, h: number, colour: Rgb): void {
  const { data, width, height } = raster;
  const x0 = Math.max(0, Math.round(x));
  const x1 = Math.min(width, Math.round(x + w));
  const y0 = Math.max(0, Math.round(y));
  const y1 = Math.min(height, Math.round(y + h));
  if (x1 <= x0 || y1 <= y0) return;
  const row = rowOf(colour, x1 - x0);
  for (let py = y0; py < y1; py++) row.copy(data, (py * width + x0) * 3);
}

/** Fills the part of the ellipse inscribed in the box that lies inside the raster. */
function fillEllipse(raster: Raster, x: number, y: number, w: number, h: number, colour: Rgb): void {
  const { data, width, height } = raster;
  const rx = w / 2;
  const ry = h / 2;
  const cx = x + rx;
  const cy = y + ry;
  const row = rowOf(colour, Math.ceil(w));
  for (let py = Math.max(0, Math.floor(y)); py < Math.min(height, Math.ceil(y + h)); py++) {
    const dy = (py + 0.5 - cy) / ry;
    if (dy * dy >= 1) continue;
    const half = rx * Math.sqrt(1 - dy * dy);
    const x0 = Math.max(0, Math.round(cx - half));
    const x1 = Math.min(width, Math.round(cx + half));
    if (x1 > x0) row.copy(data, (py * width + x0) * 3, 0, (x1 - x0) * 3);
  }
}

function rowOf(colour: Rgb, length: number): Buffer {
  const rgb = colour.map((c) => Math.max(0, Math.min(255, Math.round(c))));
  const row = Buffer.alloc(length * 3);
  for (let i = 0; i < row.length; i += 3) {
    row[i] = rgb[0]!;
    row[i + 1] = rgb[1]!;
    row[i + 2] = rgb[2]!;
  }
  return row;
}

/** Pushes a colour further from the background: dark ones towards black, bright ones towards white. */
function shade(colour: Rgb, amount: number): Rgb {
  const luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2];
  return luma < 128
    ? [colour[0] * (1 - amount), colour[1] * (1 - amount), colour[2] * (1 - amount)]
    : [
        colour[0] + (255 - colour[0]) * amount,
        colour[1] + (255 - colour[1]) * amount,
        colour[2] + (255 - colour[2]) * amount,
      ];
}

function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j] as T, items[i] as T];
  }
  return items;
}

/** Mixes integers into one 32-bit seed (murmur3's finalizer per value), so nearby seeds diverge. */
function mix(...values: number[]): number {
  let h = 0x9e3779b9;
  for (const value of values) {
    h = Math.imul(h ^ (value >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0) {
    throw new RangeError(`frame index must be an integer >= 0, got ${index}`);
  }
}
