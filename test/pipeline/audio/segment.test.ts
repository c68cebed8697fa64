import { describe, expect, it } from 'vitest';
import { gaussian, mulberry32 } from '../../../src/common/index.js';
import { segmentClip } from '../../../src/pipeline/audio/segment.js';
import { detectVoice } from '../../../src/pipeline/audio/vad.js';

const RATE = 16000;

function addNoise(x: Float32Array, from: number, to: number, rms: number, seed: number, lowpass = 0): void {
  const g = gaussian(mulberry32(seed));
  let y = 0;
  // A one-pole low-pass keeps the RMS at `rms` when scaled by sqrt((1 + a) / (1 - a)).
  const scale = Math.sqrt((1 + lowpass) / (1 - lowpass));
  for (let i = from; i < to; i++) {
    y = lowpass * y + (1 - lowpass) * g();
    x[i] = x[i]! + rms * (lowpass > 0 ? y * scale : g());
  }
}

describe('segmentClip', () => {
  const seconds = (s: number) => Math.round(s * RATE);

  it('a 70 s voiced clip becomes segments of at most 30 s that cover it', () => {
    const clip = new Float32Array(seconds(70));
    const { segments, droppedSeconds } = segmentClip(clip, [{ start: 0, end: clip.length }], {
      maxSeconds: 30,
    });
    expect(segments.length).toBe(3);
    let at = 0;
    for (const s of segments) {
      expect(s.start).toBe(at);
      expect(s.end - s.start).toBeLessThanOrEqual(seconds(30));
      at = s.end;
    }
    expect(at).toBe(clip.length);
    expect(droppedSeconds).toBe(0);
  });

  it('silence only: no segments, all of it dropped', () => {
    const clip = new Float32Array(seconds(12));
    const spans = detectVoice(clip);
    expect(segmentClip(clip, spans)).toEqual({ segments: [], droppedSeconds: 12 });
  });

  it('pads speech, merges near spans, keeps far ones apart, drops blips', () => {
    const clip = new Float32Array(seconds(60));
    const { segments, droppedSeconds } = segmentClip(
      clip,
      [
        { start: seconds(5), end: seconds(7) },
        { start: seconds(7.5), end: seconds(9) }, // 0.5 s later: same segment
        { start: seconds(20), end: seconds(22) }, // far: its own segment
        { start: seconds(40), end: seconds(40.1) }, // a 100 ms blip alone: dropped
      ],
      { padMs: 300, mergeGapMs: 1000, minSpeechMs: 250 },
    );
    expect(segments).toEqual([
      { start: seconds(4.7), end: seconds(9.3) },
      { start: seconds(19.7), end: seconds(22.3) },
    ]);
    expect(droppedSeconds).toBeCloseTo(60 - 4.6 - 2.6, 6);
  });

  it('splits a long group in the middle of a gap, not through speech', () => {
    const clip = new Float32Array(seconds(60));
    const spans = [
      { start: seconds(1), end: seconds(20) },
      { start: seconds(20.6), end: seconds(40) },
    ];
    const { segments } = segmentClip(clip, spans, { maxSeconds: 30, padMs: 300, mergeGapMs: 1000 });
    expect(segments).toEqual([
      { start: seconds(0.7), end: seconds(20.3) },
      { start: seconds(20.3), end: seconds(40.3) },
    ]);
  });

  it('a span too long only with its padding keeps all its speech and loses padding', () => {
    const clip = new Float32Array(seconds(60));
    const { segments } = segmentClip(clip, [{ start: seconds(5), end: seconds(34.8) }], { padMs: 300 });
    expect(segments).toEqual([{ start: seconds(4.9), end: seconds(34.9) }]);
  });

  it('speech longer than a segment is cut at its quietest moment, not mid-word', () => {
    const clip = new Float32Array(seconds(50));
    addNoise(clip, 0, clip.length, 0.1, 11);
    clip.fill(0, seconds(22), seconds(22.05)); // a breath at 22 s
    const { segments } = segmentClip(clip, [{ start: 0, end: clip.length }], { maxSeconds: 30 });
    expect(segments).toHaveLength(2);
    expect(segments[0]!.end).toBeGreaterThanOrEqual(seconds(22));
    expect(segments[0]!.end).toBeLessThanOrEqual(seconds(22.05));
    expect(segments[1]).toEqual({ start: segments[0]!.end, end: clip.length });
  });

  it('clamps spans to the clip and tolerates overlapping, unsorted input', () => {
    const clip = new Float32Array(seconds(10));
    const { segments } = segmentClip(clip, [
      { start: seconds(8), end: seconds(12) },
      { start: -100, end: seconds(2) },
      { start: seconds(1), end: seconds(3) },
    ]);
    expect(segments).toEqual([
      { start: 0, end: seconds(3.3) },
      { start: seconds(7.7), end: seconds(10) },
    ]);
  });
});
