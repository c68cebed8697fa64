import type { VoiceSpan } from './vad.js';

/**
 * Cutting a clip into voiced segments of at most `maxSeconds` around the speech spans that
 * `detectVoice` (vad.ts) found. Pure functions over mono samples.
 */

/** Options of {@link segmentClip}. */
export interface SegmentOptions {
  /** Sample rate of the samples, Hz. Default 16000. */
  sampleRate?: number;
  /** Longest segment, s (Gemma's audio encoder takes clips of up to 30 s). Default 30. */
  maxSeconds?: number;
  /** Context kept before and after speech, ms. Default 300. */
  padMs?: number;
  /** A segment with less speech than this (before padding) is dropped, ms. Default 250. */
  minSpeechMs?: number;
  /** Spans whose padded edges are closer than this join one segment, ms. Default 1000. */
  mergeGapMs?: number;
}

/** What {@link segmentClip} keeps. */
export interface ClipSegments {
  /** Sample ranges to keep, sorted, disjoint, each at most `maxSeconds` long; `end` exclusive. */
  segments: { start: number; end: number }[];
  /** Seconds of the clip in no segment. */
  droppedSeconds: number;
}

/**
 * Cuts a clip into voiced segments: each speech span padded by `padMs`, spans closer than `mergeGapMs`
 * joined, groups with less than `minSpeechMs` of speech dropped, and groups longer than `maxSeconds`
 * split: between spans where they can be (at the middle of the gap); a single span that is too long only
 * with its padding loses padding; one longer than `maxSeconds` is cut at its quietest 20 ms in the second
 * half of each segment. Everything outside the segments is dropped and counted in `droppedSeconds`.
 */
export function segmentClip(
  samples: Float32Array,
  spans: readonly VoiceSpan[],
  options: SegmentOptions = {},
): ClipSegments {
  const rate = options.sampleRate ?? 16000;
  const maxLength = Math.max(1, Math.floor((options.maxSeconds ?? 30) * rate));
  const pad = Math.round(((options.padMs ?? 300) * rate) / 1000);
  const minSpeech = Math.round(((options.minSpeechMs ?? 250) * rate) / 1000);
  const mergeGap = Math.round(((options.mergeGapMs ?? 1000) * rate) / 1000);
  const n = samples.length;
  const sorted = spans
    .map((s) => ({ start: Math.max(0, Math.min(n, s.start)), end: Math.max(0, Math.min(n, s.end)) }))
    .filter((s) => s.end > s.start)
    .sort((a, b) => a.start - b.start);
  const clean: VoiceSpan[] = [];
  for (const span of sorted) {
    const last = clean.at(-1);
    if (last && span.start <= last.end) last.end = Math.max(last.end, span.end);
    else clean.push(span);
  }
  // Group spans whose padded edges come within mergeGap of each other.
  const groups: VoiceSpan[][] = [];
  for (const span of clean) {
    const group = groups.at(-1);
    const last = group?.at(-1);
    if (group && last && span.start - pad - (last.end + pad) < mergeGap) group.push(span);
    else groups.push([span]);
  }
  const segments: { start: number; end: number }[] = [];
  for (const group of groups) {
    const speech = group.reduce((sum, s) => sum + (s.end - s.start), 0);
    if (speech < minSpeech) continue;
    splitGroup(samples, group, pad, maxLength, rate, segments);
  }
  const kept = segments.reduce((sum, s) => sum + (s.end - s.start), 0);
  return { segments, droppedSeconds: (n - kept) / rate };
}

/** Appends a padded group as segments of at most maxLength samples. */
function splitGroup(
  samples: Float32Array,
  group: VoiceSpan[],
  pad: number,
  maxLength: number,
  rate: number,
  out: { start: number; end: number }[],
): void {
  const n = samples.length;
  const previousEnd = out.at(-1)?.end ?? 0;
  let start = Math.max(previousEnd, group[0]!.start - pad);
  let i = 0;
  while (i < group.length) {
    // Take spans while the segment still fits.
    let j = i;
    while (j + 1 < group.length && Math.min(n, group[j + 1]!.end + pad) - start <= maxLength) j++;
    const last = group[j]!;
    const next = group[j + 1];
    let end = Math.min(n, last.end + pad);
    if (next) end = Math.min(end, Math.floor((last.end + next.start) / 2));
    if (end - start > maxLength) {
      // Only one span (j === i) can overflow. If it fits without its padding, trim the padding.
      const span = group[i]!;
      const length = span.end - span.start;
      if (length <= maxLength) {
        start = Math.max(start, span.start - Math.floor((maxLength - length) / 2));
        end = Math.min(end, start + maxLength);
      } else {
        // Longer than a segment: cut where it is quietest, in the second half of each segment.
        while (end - start > maxLength) {
          const cut = quietestPoint(samples, start + Math.ceil(maxLength / 2), start + maxLength, rate);
          out.push({ start, end: cut });
          start = cut;
        }
      }
    }
    out.push({ start, end });
    if (next) start = Math.max(end, next.start - pad);
    i = j + 1;
  }
}

/**
 * The centre of the quietest 20 ms window (10 ms steps) whose centre lies in [from, to]; on a tie the
 * later one, so that segments come out as long as allowed.
 */
function quietestPoint(samples: Float32Array, from: number, to: number, rate: number): number {
  const half = Math.max(1, Math.round(rate * 0.01));
  let best = to;
  let bestEnergy = Number.POSITIVE_INFINITY;
  for (let centre = to; centre >= from; centre -= half) {
    let energy = 0;
    const lo = Math.max(0, centre - half);
    const hi = Math.min(samples.length, centre + half);
    for (let k = lo; k < hi; k++) energy += samples[k]! * samples[k]!;
    if (energy < bestEnergy) {
      bestEnergy = energy;
      best = centre;
    }
  }
  return best;
}
