import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  type CameraFrame,
  CameraScenario,
  type CameraScenarioOptions,
  type SceneObject,
} from '../../src/cli/cameraScenario.js';
import { changeScore, type GrayImage } from '../../src/pipeline/frame/changeScore.js';

/** The gate's view of a frame: a 32x32 grayscale copy, as the frame stage makes it. */
async function gray(jpeg: Buffer): Promise<GrayImage> {
  const data = await sharp(jpeg).greyscale().resize(32, 32, { fit: 'fill' }).raw().toBuffer();
  return { width: 32, height: 32, data: new Uint8Array(data) };
}

/** Frames 0..count-1 of one camera, each with its gate copy. */
async function play(
  scenario: CameraScenario,
  camera: number,
  count: number,
): Promise<{ frame: CameraFrame; gray: GrayImage }[]> {
  const out = [];
  for (let index = 0; index < count; index++) {
    const frame = await scenario.frame(camera, index);
    out.push({ frame, gray: await gray(frame.jpeg) });
  }
  return out;
}

function inside(object: SceneObject, width: number, height: number): boolean {
  return object.x >= 0 && object.y >= 0 && object.x + object.w <= width && object.y + object.h <= height;
}

// One 60 s cycle at 1 fps: a crossing, a visit and the arrival of the object that stays.
const CYCLE: CameraScenarioOptions = { cameras: 2, width: 640, height: 360, fps: 1, cycleSeconds: 60 };

describe('CameraScenario', () => {
  it('renders JPEG frames of the requested size, with camera-like file sizes at 1280x720', async () => {
    const scenario = new CameraScenario({ cameras: 2, seed: 3 });
    expect(scenario.cameras).toEqual(['cam-1', 'cam-2']);
    const frame = await scenario.frame(1, 0);
    expect(frame).toMatchObject({ camera: 'cam-2', topic: 'cameras/cam-2/frame', index: 0, tMs: 0 });
    const meta = await sharp(frame.jpeg).metadata();
    expect(meta).toMatchObject({ format: 'jpeg', width: 1280, height: 720, channels: 3 });
    // A flat fill would compress to a few kB; the textured scene is what a real camera sends.
    expect(frame.jpeg.length).toBeGreaterThan(50_000);
    expect(frame.jpeg.length).toBeLessThan(200_000);

    const small = await new CameraScenario({ width: 320, height: 240, prefix: 'dock' }).frame(0, 0);
    expect(small.topic).toBe('cameras/dock-1/frame');
    expect(await sharp(small.jpeg).metadata()).toMatchObject({ format: 'jpeg', width: 320, height: 240 });
  });

  it('is deterministic per seed, differs across seeds and cameras, renders any frame alone', async () => {
    const options = { ...CYCLE, seed: 11 };
    const sequential = new CameraScenario(options);
    for (let index = 0; index < 8; index++) await sequential.frame(0, index);
    const eighth = await sequential.frame(0, 8);
    const direct = await new CameraScenario(options).frame(0, 8);
    expect(direct.jpeg.equals(eighth.jpeg)).toBe(true);
    expect(direct.objects).toEqual(eighth.objects);

    const other = await new CameraScenario({ ...options, seed: 12 }).frame(0, 8);
    expect(other.jpeg.equals(eighth.jpeg)).toBe(false);
    expect((await sequential.frame(1, 8)).jpeg.equals(eighth.jpeg)).toBe(false);
  });

  it('has one object of each behaviour, the still one staying put once it arrived', () => {
    const scenario = new CameraScenario({ ...CYCLE, seed: 5 });
    const layouts = Array.from({ length: 180 }, (_, index) => scenario.layout(0, index));
    expect(layouts[0]!.map((o) => o.behaviour)).toEqual(['still', 'transient', 'moving']);

    const still = layouts.map((objects) => objects[0]!);
    const arrival = still.findIndex((o) => o.visible);
    expect(arrival).toBeGreaterThan(40);
    expect(arrival).toBeLessThan(46);
    expect(still[arrival]!.changed).toBe(true);
    for (const o of still.slice(arrival + 1)) expect(o).toMatchObject({ visible: true, changed: false });

    // Each 60 s cycle: one visit of a few seconds, one crossing that moves every frame.
    for (let cycle = 0; cycle < 3; cycle++) {
      const frames = layouts.slice(cycle * 60, cycle * 60 + 60);
      const visit = frames.filter((objects) => objects[1]!.visible);
      expect(visit.length).toBeGreaterThanOrEqual(3);
      expect(visit.length).toBeLessThanOrEqual(6);
      const crossing = frames.map((objects) => objects[2]!).filter((o) => o.visible);
      expect(crossing.length).toBeGreaterThanOrEqual(6);
      for (const o of crossing) expect(o.changed).toBe(true);
      expect(new Set(crossing.map((o) => o.x)).size).toBe(crossing.length);
    }
  });

  it('quiet frames are identical (score 0); arrivals, departures and moves score above 0.02', async () => {
    const scenario = new CameraScenario({ ...CYCLE, seed: 21 });
    for (let camera = 0; camera < 2; camera++) {
      const frames = await play(scenario, camera, 60);
      let quiet = 0;
      let scored = 0;
      for (let index = 1; index < frames.length; index++) {
        const { frame, gray: now } = frames[index]!;
        const before = frames[index - 1]!;
        const score = changeScore(before.gray, now);
        if (!frame.changed) {
          quiet++;
          expect(frame.jpeg.equals(before.frame.jpeg)).toBe(true);
          expect(score).toBe(0);
          continue;
        }
        // An object only partly in view (entering or leaving) may change less than the threshold.
        const boxes = frame.objects.flatMap((o, i) => (o.changed ? [o, before.frame.objects[i]!] : []));
        if (!boxes.every((o) => !o.visible || inside(o, 640, 360))) continue;
        scored++;
        expect(score, `camera ${camera} frame ${index}`).toBeGreaterThan(0.03);
      }
      // Most of the time nothing happens: that is what the gate must drop.
      expect(quiet).toBeGreaterThan(35);
      // Identical bytes come from identical rendering, not only from reusing the last frame.
      const last = frames.at(-1)!;
      expect(last.frame.changed).toBe(false);
      const fresh = await new CameraScenario({ ...CYCLE, seed: 21 }).frame(camera, last.frame.index);
      expect(fresh.jpeg.equals(frames.at(-2)!.frame.jpeg)).toBe(true);
      expect(scored).toBeGreaterThanOrEqual(4);
    }
  });

  it('with sensor noise, quiet frames differ in bytes but stay under the change threshold', async () => {
    const scenario = new CameraScenario({ ...CYCLE, cameras: 1, seed: 21, noise: 2 });
    const frames = await play(scenario, 0, 40);
    let quiet = 0;
    for (let index = 1; index < frames.length; index++) {
      if (frames[index]!.frame.changed) continue;
      quiet++;
      expect(frames[index]!.frame.jpeg.equals(frames[index - 1]!.frame.jpeg)).toBe(false);
      expect(changeScore(frames[index - 1]!.gray, frames[index]!.gray)).toBeLessThanOrEqual(0.02);
    }
    expect(quiet).toBeGreaterThan(20);
  });

  it('draws what the ground truth says: each visible object shows its colour at its centre', async () => {
    const width = 640;
    const height = 360;
    const scenario = new CameraScenario({ ...CYCLE, seed: 9 });
    let checked = 0;
    for (let camera = 0; camera < 2; camera++) {
      for (let index = 0; index < 60; index++) {
        const frame = await scenario.frame(camera, index);
        const visible = frame.objects.filter((o) => o.visible);
        if (visible.length === 0) continue;
        const { data } = await sharp(frame.jpeg).raw().toBuffer({ resolveWithObject: true });
        const pixel = (x: number, y: number) => [
          ...data.subarray((y * width + x) * 3, (y * width + x) * 3 + 3),
        ];
        for (const [i, o] of visible.entries()) {
          const cx = Math.round(o.x + o.w / 2);
          const cy = Math.round(o.y + o.h / 2);
          if (cx < 0 || cx >= width || cy < 0 || cy >= height) continue;
          // Objects later in the list are drawn over earlier ones.
          const covered = visible
            .slice(i + 1)
            .some((p) => cx >= p.x && cx < p.x + p.w && cy >= p.y && cy < p.y + p.h);
          if (covered) continue;
          const [r, g, b] = pixel(cx, cy);
          expect(Math.abs(r! - o.colour[0]), `${o.label} in frame ${index}`).toBeLessThan(24);
          expect(Math.abs(g! - o.colour[1])).toBeLessThan(24);
          expect(Math.abs(b! - o.colour[2])).toBeLessThan(24);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(20);

    // Before the still object arrives, its place shows the background, far from its colour.
    const arrival = Array.from({ length: 60 }, (_, i) => scenario.layout(0, i)).findIndex(
      (objects) => objects[0]!.visible,
    );
    const still = scenario.layout(0, arrival)[0]!;
    const early = await scenario.frame(0, 1);
    expect(early.objects.filter((o) => o.visible)).toHaveLength(0);
    const { data } = await sharp(early.jpeg).raw().toBuffer({ resolveWithObject: true });
    const at = (Math.round(still.y + still.h / 2) * width + Math.round(still.x + still.w / 2)) * 3;
    const luma = (c: readonly number[]) => 0.299 * c[0]! + 0.587 * c[1]! + 0.114 * c[2]!;
    expect(Math.abs(luma([...data.subarray(at, at + 3)]) - luma(still.colour))).toBeGreaterThan(25);
  });

  it('refuses bad options', () => {
    expect(() => new CameraScenario({ cameras: 0 })).toThrow(/cameras/);
    expect(() => new CameraScenario({ prefix: 'a/b' })).toThrow(/prefix/);
    expect(() => new CameraScenario({ width: 8 })).toThrow(/width/);
    expect(() => new CameraScenario({ height: 720.5 })).toThrow(/height/);
    expect(() => new CameraScenario({ fps: 0 })).toThrow(/fps/);
    expect(() => new CameraScenario({ quality: 101 })).toThrow(/quality/);
    expect(() => new CameraScenario({ noise: -1 })).toThrow(/noise/);
    const scenario = new CameraScenario();
    expect(() => scenario.layout(1, 0)).toThrow(/camera/);
    expect(() => scenario.layout(0, -1)).toThrow(/index/);
  });
});
