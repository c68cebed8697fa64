export { decodeAudioPayload } from './payload.js';
export {
  type AudioDecodeResult,
  type AudioFormat,
  type AudioLimits,
  type AudioRejectCode,
  type AudioRejection,
  type DecodedAudio,
  MAX_SAMPLE_RATE,
  MIN_SAMPLE_RATE,
  type PcmAudio,
  type SampleEncoding,
} from './pcm.js';
export { downmix, type ResampleOptions, resample, resampledLength } from './resample.js';
export { resampleKernel } from './resampleKernel.js';
export { type ClipSegments, type SegmentOptions, segmentClip } from './segment.js';
export { detectVoice, type VoiceDetectorOptions, type VoiceSpan } from './vad.js';
export { encodeWav, sniffAudioCodec } from './wav.js';
