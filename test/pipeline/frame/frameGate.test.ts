import { describe, expect, it } from 'vitest';
import type { GrayImage } from '../../../src/pipeline/frame/changeScore.js';
import { FrameGate, type FrameGateReason } from '../../../src/pipeline/frame/frameGate.js';

const SIZE = 32;

/** A flat mid-grey frame with an optional `value`-filled 6x6 block at (x0, y0). */
function frame(block?: { x0: number; y0: number; value?: number }, background = 100): GrayImage {
  const data = new Uint8Array(SIZE * SIZE).fill(background);
  if (block) {
    for (let y = block.y0; y < block.y0 + 6; y++) {
      for (let x = block.x0; x < block.x0 + 6; x++) data[y * SIZE + x] = block.value ?? 250;
    }
  }
  return { width: SIZE, height: SIZE, data };
}

const EMPTY = frame();
const OBJECT_A = frame({ x0: 4, y0: 4 });
const OBJECT_B = frame({ x0: 20, y0: 20 });
const SECOND = 1000;

function reasons(gate: FrameGate, camera: string, frames: GrayImage[], t0: number, stepMs: number): string[] {
  return frames.map((f, i) => gate.offer(camera, f, t0 + i * stepMs).reason);
}

describe('FrameGate', () => {
  it('accepts the first frame, then drops the same frame as unchanged', () => {
    const gate = new FrameGate();
    const decisions = Array.from({ length: 20 }, (_, i) => gate.offer('cam1', EMPTY, i * 2 * SECOND));
    expect(decisions[0]).toEqual({ accepted: true, reason: 'first', score: null });
    expect(decisions.slice(1).every((d) => !d.accepted && d.reason === 'unchanged' && d.score === 0)).toBe(
      true,
    );
    expect(gate.stats()['cam1']).toMatchObject({ first: 1, unchanged: 19, changed: 0 });
  });

  it('accepts a changed frame with its score', () => {
    const gate = new FrameGate();
    gate.offer('cam1', EMPTY, 0);
    const d = gate.offer('cam1', OBJECT_A, 2 * SECOND);
    expect(d.accepted).toBe(true);
    expect(d.reason).toBe('changed');
    expect(d.score).toBeCloseTo(36 / 1024, 6);
  });

  it('ignores a global brightness shift', () => {
    const gate = new FrameGate();
    gate.offer('cam1', EMPTY, 0);
    expect(gate.offer('cam1', frame(undefined, 130), 2 * SECOND).reason).toBe('unchanged');
  });

  it('drops further changes within the cooldown and accepts one after it', () => {
    const gate = new FrameGate({ minIntervalMs: 1000, cooldownMs: 10_000 });
    gate.offer('cam1', EMPTY, 0);
    expect(gate.offer('cam1', OBJECT_A, 2_000)).toMatchObject({ accepted: true, reason: 'changed' });
    const inCooldown = gate.offer('cam1', OBJECT_B, 5_000);
    expect(inCooldown.accepted).toBe(false);
    expect(inCooldown.reason).toBe('cooldown');
    expect(inCooldown.score).toBeGreaterThan(0.02);
    expect(gate.offer('cam1', OBJECT_B, 11_999).reason).toBe('cooldown');
    // the reference is still OBJECT_A (the last accepted frame), so OBJECT_B is still a change
    expect(gate.offer('cam1', OBJECT_B, 12_000)).toMatchObject({ accepted: true, reason: 'changed' });
  });

  it('does not start a cooldown on the first frame', () => {
    const gate = new FrameGate();
    gate.offer('cam1', EMPTY, 0);
    expect(gate.offer('cam1', OBJECT_A, 1_000).reason).toBe('changed');
  });

  it('compares with the last accepted frame, not the last offered one', () => {
    const gate = new FrameGate({ cooldownMs: 0 });
    gate.offer('cam1', EMPTY, 0);
    // OBJECT_A arrives too early and is dropped
    expect(gate.offer('cam1', OBJECT_A, 500).reason).toBe('too-soon');
    // still compared with EMPTY, so it is a change when it comes again in time
    expect(gate.offer('cam1', OBJECT_A, 1_000).reason).toBe('changed');
    expect(gate.offer('cam1', OBJECT_A, 2_000).reason).toBe('unchanged');
    expect(gate.offer('cam1', EMPTY, 3_000).reason).toBe('changed');
  });

  it('answers too-soon within minIntervalMs of the last accepted frame, without scoring', () => {
    const gate = new FrameGate({ minIntervalMs: 1000 });
    gate.offer('cam1', EMPTY, 10_000);
    expect(gate.offer('cam1', OBJECT_A, 10_999)).toEqual({
      accepted: false,
      reason: 'too-soon',
      score: null,
    });
    expect(gate.offer('cam1', OBJECT_A, 11_000).reason).toBe('changed');
  });

  it('accepts a forced frame even when unchanged, too soon or in cooldown', () => {
    const gate = new FrameGate();
    gate.offer('cam1', EMPTY, 0);
    expect(gate.offer('cam1', EMPTY, 5_000, { force: true })).toEqual({
      accepted: true,
      reason: 'forced',
      score: 0,
    });
    expect(gate.offer('cam1', EMPTY, 5_001, { force: true }).reason).toBe('forced');
    expect(gate.offer('cam1', OBJECT_A, 7_000).reason).toBe('changed');
    expect(gate.offer('cam1', OBJECT_B, 8_000, { force: true }).reason).toBe('forced');
    expect(gate.offer('new-cam', EMPTY, 0, { force: true })).toEqual({
      accepted: true,
      reason: 'forced',
      score: null,
    });
  });

  it("mode 'off' accepts every frame, still at most one per minIntervalMs", () => {
    const gate = new FrameGate({ mode: 'off', minIntervalMs: 1000 });
    const seen = reasons(gate, 'cam1', [EMPTY, EMPTY, EMPTY, OBJECT_A, EMPTY], 0, 600);
    // t = 0, 600, 1200, 1800, 2400
    expect(seen).toEqual(['first', 'too-soon', 'ungated', 'too-soon', 'ungated']);
    expect(gate.offer('cam1', EMPTY, 10_000)).toEqual({ accepted: true, reason: 'ungated', score: null });
    const unlimited = new FrameGate({ mode: 'off', minIntervalMs: 0 });
    expect(reasons(unlimited, 'cam1', [EMPTY, EMPTY, EMPTY], 0, 0)).toEqual(['first', 'ungated', 'ungated']);
  });

  it('keeps cameras independent', () => {
    const gate = new FrameGate();
    expect(gate.offer('a', EMPTY, 0).reason).toBe('first');
    expect(gate.offer('b', OBJECT_A, 100).reason).toBe('first');
    expect(gate.offer('a', OBJECT_A, 2_000).reason).toBe('changed');
    expect(gate.offer('b', OBJECT_A, 2_000).reason).toBe('unchanged');
    expect(gate.offer('b', EMPTY, 3_000).reason).toBe('changed'); // a's cooldown does not apply to b
    expect(gate.offer('a', EMPTY, 3_000).reason).toBe('cooldown');
  });

  it('counts decisions per camera and reason, and forgets a camera', () => {
    const gate = new FrameGate();
    gate.offer('a', EMPTY, 0);
    gate.offer('a', EMPTY, 100);
    gate.offer('a', EMPTY, 2_000);
    gate.offer('a', OBJECT_A, 3_000);
    gate.offer('a', EMPTY, 5_000);
    gate.offer('a', EMPTY, 5_500, { force: true });
    gate.offer('b', EMPTY, 0);
    const zero: Record<FrameGateReason, number> = {
      first: 0,
      changed: 0,
      forced: 0,
      ungated: 0,
      unchanged: 0,
      'too-soon': 0,
      cooldown: 0,
    };
    expect(gate.stats()).toEqual({
      a: { ...zero, first: 1, 'too-soon': 1, unchanged: 1, changed: 1, cooldown: 1, forced: 1 },
      b: { ...zero, first: 1 },
    });
    expect(gate.size).toBe(2);
    expect(gate.forget('a')).toBe(true);
    expect(gate.forget('a')).toBe(false);
    expect(gate.size).toBe(1);
    expect(gate.stats()).toEqual({ b: { ...zero, first: 1 } });
    expect(gate.offer('a', OBJECT_A, 5_600).reason).toBe('first');
  });

  it('keeps its own copy of the reference, so callers may reuse their buffer', () => {
    const gate = new FrameGate();
    const buffer = frame();
    gate.offer('cam1', buffer, 0);
    buffer.data.set(OBJECT_A.data);
    expect(gate.offer('cam1', buffer, 2_000).reason).toBe('changed');
  });

  it('treats a resolution change as a full change', () => {
    const gate = new FrameGate();
    gate.offer('cam1', EMPTY, 0);
    const big = { width: 64, height: 64, data: new Uint8Array(64 * 64).fill(100) };
    expect(gate.offer('cam1', big, 2_000)).toEqual({ accepted: true, reason: 'changed', score: 1 });
    expect(gate.offer('cam1', big, 20_000).reason).toBe('unchanged');
  });

  it('recovers from a clock stepping backwards within one interval', () => {
    const gate = new FrameGate({ minIntervalMs: 1000, cooldownMs: 10_000 });
    gate.offer('cam1', EMPTY, 1_000_000);
    gate.offer('cam1', OBJECT_A, 1_002_000);
    expect(gate.offer('cam1', EMPTY, 0).reason).toBe('too-soon');
    expect(gate.offer('cam1', EMPTY, 1_000).reason).toBe('cooldown');
    expect(gate.offer('cam1', EMPTY, 10_000).reason).toBe('changed');
  });

  it('prechecks frames that are too soon without pixels, and counts them like offer() would', () => {
    const gate = new FrameGate({ minIntervalMs: 1000 });
    expect(gate.precheck('cam1', 0)).toBeUndefined();
    gate.offer('cam1', EMPTY, 0);
    expect(gate.precheck('cam1', 500)).toEqual({ accepted: false, reason: 'too-soon', score: null });
    expect(gate.precheck('cam1', 500, { force: true })).toBeUndefined();
    expect(gate.precheck('cam1', 1000)).toBeUndefined();
    expect(gate.stats().cam1?.['too-soon']).toBe(1);
  });

  it('rejects invalid options', () => {
    expect(() => new FrameGate({ threshold: 1 })).toThrow(RangeError);
    expect(() => new FrameGate({ threshold: -0.1 })).toThrow(RangeError);
    expect(() => new FrameGate({ minIntervalMs: -1 })).toThrow(RangeError);
    expect(() => new FrameGate({ cooldownMs: Number.NaN })).toThrow(RangeError);
  });
});
