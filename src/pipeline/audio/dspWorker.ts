/**
 * The audio DSP thread: decode, downmix, resample to 16 kHz, voice activity and segmentation of one clip,
 * off the daemon's event loop (a minute of 48 kHz audio is hundreds of milliseconds of arithmetic, which
 * would hold up every acknowledgement). Started by AudioDsp; one request at a time.
 */
import { parentPort } from 'node:worker_threads';
import type { DspReply, DspRequest } from './dspProtocol.js';
import { decodeAudioPayload } from './payload.js';
import { downmix, resample } from './resample.js';
import { segmentClip } from './segment.js';
import { detectVoice } from './vad.js';
import { encodeWav } from './wav.js';

const RATE = 16_000;

function handle(request: DspRequest): { reply: DspReply; transfer: ArrayBuffer[] } {
  const { id, payload, contentType, limits } = request;
  const decoded = decodeAudioPayload(payload, contentType, limits);
  if (!decoded.ok)
    return { reply: { id, ok: false, code: decoded.code, reason: decoded.reason }, transfer: [] };
  const { audio } = decoded;
  const mono = resample(downmix(audio.channels), audio.sampleRate, RATE);
  const spans = detectVoice(mono);
  const { segments, droppedSeconds } = segmentClip(mono, spans, {
    maxSeconds: request.segmentSeconds,
    padMs: request.padMs,
  });
  const clips = segments.map((s) => ({
    startSeconds: s.start / RATE,
    seconds: (s.end - s.start) / RATE,
    wav: encodeWav(mono.subarray(s.start, s.end), RATE),
  }));
  return {
    reply: {
      id,
      ok: true,
      format: decoded.format,
      sampleRate: audio.sampleRate,
      channels: audio.channels.length,
      seconds: mono.length / RATE,
      droppedSeconds,
      ...(decoded.ts === undefined ? {} : { ts: decoded.ts }),
      ...(decoded.prompt === undefined ? {} : { prompt: decoded.prompt }),
      clips,
    },
    transfer: clips.map((c) => c.wav.buffer as ArrayBuffer),
  };
}

parentPort?.on('message', (request: DspRequest) => {
  try {
    const { reply, transfer } = handle(request);
    parentPort?.postMessage(reply, transfer);
  } catch (error) {
    parentPort?.postMessage({
      id: request.id,
      ok: false,
      code: 'audio-failed',
      reason: `the clip could not be processed: ${(error as Error).message}`.slice(0, 199),
    } satisfies DspReply);
  }
});
parentPort?.postMessage({ ready: true });
