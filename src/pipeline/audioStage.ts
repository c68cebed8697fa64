import { CAMERA_NAME } from '../config/index.js';
import type { JournalEntry, MediaFile, MediaStore } from '../store/index.js';
import { AudioDsp } from './audio/dsp.js';
import type { StageBatch } from './types.js';

export interface AudioStageOptions {
  maxSeconds: number;
  maxChannels: number;
  maxSources: number;
  /** longest voiced segment, s */
  segmentSeconds: number;
  /** kept before and after speech, ms */
  padMs: number;
  /** writes the voiced clips */
  media: Pick<MediaStore, 'write'>;
  /** voiced clips become model jobs; without, they are only counted (inference off) */
  describe: boolean;
  /** payload limit of an audio route, bytes */
  maxBytes: (route: string) => number;
}

/** A voiced stretch of a clip, written as a 16 kHz mono WAV: the sink records it and queues its job. */
export interface VoicedClip {
  journalId: number;
  route: string;
  source: string;
  /** epoch ms the stretch starts */
  ts: number;
  seconds: number;
  clip: MediaFile;
  /** the clip's own prompt */
  prompt?: string | undefined;
}

/** Per source: what came in and what was kept. */
export interface AudioSourceStats {
  clips: number;
  rejected: number;
  /** seconds of audio received */
  seconds: number;
  /** seconds kept as voiced segments */
  voicedSeconds: number;
  /** seconds of silence dropped */
  droppedSeconds: number;
  segments: number;
  last: { at: string; format: string; sampleRate: number; channels: number } | null;
}

export interface AudioStageStats {
  sources: Record<string, AudioSourceStats>;
  /** processing time per second of audio (decode, resample, activity detection), mean */
  realTimeFactor: number | null;
}

const round = (x: number) => Math.round(x * 1000) / 1000;

/**
 * Audio clips: decode (WAV, raw L16, JSON), downmix, resample to 16 kHz, find the speech, and keep each
 * voiced stretch (at most segmentSeconds, padded) as a 16 kHz mono WAV under the media folder; silence is
 * dropped and counted. The arithmetic runs in a thread of its own so acknowledgements keep flowing.
 */
export class AudioStage {
  readonly #o: AudioStageOptions;
  readonly #dsp = new AudioDsp();
  readonly #sources = new Map<string, AudioSourceStats>();
  #audioSeconds = 0;
  #processingMs = 0;

  constructor(options: AudioStageOptions) {
    this.#o = options;
  }

  /** Processes one journal entry of an audio route into `batch`; `captures[0]` is the source. */
  async process(entry: JournalEntry, captures: readonly string[], batch: StageBatch): Promise<void> {
    const o = this.#o;
    batch.released.push(entry.id);
    const source = captures[0] ?? '';
    // The source names a media folder: nothing but a plain name may reach the file system.
    if (!CAMERA_NAME.test(source)) {
      return reject(entry, batch, 'bad-source', 'source name must be 1-64 letters, digits, ".", "-" or "_"');
    }
    const stats = this.#stats(source);
    if (!stats) {
      return reject(
        entry,
        batch,
        'too-many-sources',
        `already tracking ${this.#sources.size} audio sources (audio.maxSources ${o.maxSources})`,
      );
    }
    const started = performance.now();
    const reply = await this.#dsp.process({
      payload: entry.payload,
      contentType: entry.contentType ?? undefined,
      limits: { maxBytes: o.maxBytes(entry.route), maxSeconds: o.maxSeconds, maxChannels: o.maxChannels },
      segmentSeconds: o.segmentSeconds,
      padMs: o.padMs,
    });
    if (!reply.ok) {
      stats.rejected += 1;
      return reject(entry, batch, reply.code, reply.reason);
    }
    this.#processingMs += performance.now() - started;
    this.#audioSeconds += reply.seconds;
    stats.clips += 1;
    stats.seconds = round(stats.seconds + reply.seconds);
    stats.droppedSeconds = round(stats.droppedSeconds + reply.droppedSeconds);
    stats.segments += reply.clips.length;
    stats.last = {
      at: new Date(entry.receivedAt).toISOString(),
      format: reply.format,
      sampleRate: reply.sampleRate,
      channels: reply.channels,
    };
    batch.processed.push(entry.id);
    // A clip received at T covers the seconds before T, unless it says when it started.
    const start = reply.ts ?? entry.receivedAt - Math.round(reply.seconds * 1000);
    const day = new Date(entry.receivedAt).toISOString().slice(0, 10);
    for (const [n, clip] of reply.clips.entries()) {
      stats.voicedSeconds = round(stats.voicedSeconds + clip.seconds);
      if (!o.describe) continue;
      const file = await o.media.write(
        { path: `audio/${source}/${day}/${entry.id}-${n}.wav`, source, kind: 'clip' },
        clip.wav,
      );
      batch.clips.push({
        journalId: entry.id,
        route: entry.route,
        source,
        ts: start + Math.round(clip.startSeconds * 1000),
        seconds: round(clip.seconds),
        clip: file,
        prompt: reply.prompt,
      });
    }
  }

  stats(): AudioStageStats {
    return {
      sources: Object.fromEntries([...this.#sources].map(([name, s]) => [name, structuredClone(s)])),
      realTimeFactor: this.#audioSeconds === 0 ? null : round(this.#processingMs / 1000 / this.#audioSeconds),
    };
  }

  /** Stops the DSP thread. */
  close(): Promise<void> {
    return this.#dsp.close();
  }

  #stats(source: string): AudioSourceStats | undefined {
    let stats = this.#sources.get(source);
    if (!stats) {
      if (this.#sources.size >= this.#o.maxSources) return undefined;
      stats = {
        clips: 0,
        rejected: 0,
        seconds: 0,
        voicedSeconds: 0,
        droppedSeconds: 0,
        segments: 0,
        last: null,
      };
      this.#sources.set(source, stats);
    }
    return stats;
  }
}

function reject(entry: JournalEntry, batch: StageBatch, code: string, reason: string) {
  batch.rejected.push({ journalId: entry.id, code, reason });
}
