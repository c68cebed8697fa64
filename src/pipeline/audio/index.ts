export { downmix, type ResampleOptions, resample, resampledLength, resampleKernel } from './resample.js';
export {
  type ClipSegments,
  detectVoice,
  type SegmentOptions,
  segmentClip,
  type VoiceDetectorOptions,
  type VoiceSpan,
} from './vad.js';
export {
  type AudioDecodeResult,
  type AudioFormat,
  type AudioLimits,
  type AudioRejectCode,
  type AudioRejection,
  type DecodedAudio,
  decodeAudioPayload,
  encodeWav,
  MAX_SAMPLE_RATE,
  MIN_SAMPLE_RATE,
  type PcmAudio,
  type SampleEncoding,
  sniffAudioCodec,
} from './wav.js';
