/**
 * RIFF/WAVE parsing (RF64 too) into planar float PCM, naming of other audio containers by their magic
 * numbers, and encoding of stored clips as 16-bit WAV. Pure; never throws for bad input: every refusal
 * is a stable code and a short reason that never quotes payload bytes.
 *
 * Nothing is allocated from a header's claim: sizes, rates and channel counts are checked against the
 * payload's real length and the limits first, and samples are decoded only from bytes that are there.
 */

import { writeWavHeader } from '../../common/index.js';
import {
  type AudioLimits,
  type AudioRejection,
  checkShape,
  clipSample,
  type DecodedAudio,
  deinterleave,
  MAX_SAMPLE_RATE,
  MIN_SAMPLE_RATE,
  reject,
  type SampleEncoding,
} from './pcm.js';

/**
 * Data sizes that streaming writers leave in the header when they cannot seek back to patch it:
 * 0xFFFFFFFF (ffmpeg, RF64), 0x7FFFFFFF, 0x7FFFF000 (sox writing to a pipe) and 0. With one of these the
 * decoder takes the bytes that are there (see {@link decodeWav}).
 */
const UNKNOWN_DATA_SIZES = new Set([0xffffffff, 0x7fffffff, 0x7ffff000, 0]);

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** Bytes 2..15 of the KSDATAFORMAT_SUBTYPE GUIDs that wrap a plain format tag (mmreg.h). */
const SUBFORMAT_GUID_TAIL = [
  0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71,
];

/** Format tags of WAV codecs this decoder refuses, by name (mmreg.h). */
const CODEC_NAMES = new Map<number, string>([
  [0x0002, 'Microsoft ADPCM'],
  [0x0006, 'A-law'],
  [0x0007, 'mu-law'],
  [0x0010, 'OKI ADPCM'],
  [0x0011, 'IMA ADPCM'],
  [0x0014, 'G.723 ADPCM'],
  [0x0022, 'TrueSpeech'],
  [0x0031, 'GSM 6.10'],
  [0x0040, 'G.721 ADPCM'],
  [0x0050, 'MPEG audio'],
  [0x0055, 'MP3'],
  [0x0064, 'G.726 ADPCM'],
  [0x0092, 'AC-3'],
  [0x00ff, 'AAC'],
  [0x0161, 'WMA'],
  [0x1610, 'AAC (HE)'],
  [0x2000, 'AC-3'],
  [0x2001, 'DTS'],
  [0x674f, 'Vorbis'],
  [0x6750, 'Vorbis'],
  [0x704f, 'Opus'],
  [0xf1ac, 'FLAC'],
]);

function ascii(bytes: Uint8Array, at: number, length: number): string {
  let text = '';
  for (let i = at; i < Math.min(at + length, bytes.length); i++) text += String.fromCharCode(bytes[i]!);
  return text;
}

/** A chunk id as printable text for a reason; other bytes become '?', so no payload byte is replayed raw. */
function chunkName(bytes: Uint8Array, at: number): string {
  let text = '';
  for (let i = at; i < Math.min(at + 4, bytes.length); i++) {
    const b = bytes[i]!;
    text += b >= 0x20 && b < 0x7f && b !== 0x27 ? String.fromCharCode(b) : '?';
  }
  return text;
}

function isChunkId(bytes: Uint8Array, at: number): boolean {
  if (at + 4 > bytes.length) return false;
  for (let i = at; i < at + 4; i++) {
    const b = bytes[i]!;
    if (b < 0x20 || b > 0x7e) return false;
  }
  return true;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Names a known non-WAV audio container by its magic number; undefined when none matches. */
export function sniffAudioCodec(bytes: Uint8Array): string | undefined {
  const head4 = ascii(bytes, 0, 4);
  if (head4 === 'OggS') return 'Ogg';
  if (head4 === 'fLaC') return 'FLAC';
  if (head4 === 'RIFX') return 'big-endian RIFX WAV';
  if (head4 === 'FORM' && ascii(bytes, 8, 3) === 'AIF') return 'AIFF';
  if (head4 === '.snd') return 'Sun AU';
  if (head4 === 'caff') return 'CAF';
  if (head4 === 'MThd') return 'MIDI';
  if (ascii(bytes, 0, 5) === '#!AMR') return 'AMR';
  if (ascii(bytes, 0, 3) === 'ID3') return 'MP3';
  if (ascii(bytes, 4, 4) === 'ftyp') return 'MP4 audio';
  if (bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3)
    return 'WebM/Matroska';
  if (bytes.length >= 2 && bytes[0] === 0xff) {
    const b1 = bytes[1]!;
    if ((b1 & 0xf6) === 0xf0) return 'AAC (ADTS)';
    if ((b1 & 0xe0) === 0xe0 && (b1 & 0x06) !== 0) return 'MP3';
  }
  return undefined;
}

/** Whether `bytes` start like a RIFF/WAVE (or RF64) file, which {@link decodeWav} takes. */
export function hasRiffMagic(bytes: Uint8Array): boolean {
  const magic = ascii(bytes, 0, 4);
  return magic === 'RIFF' || magic === 'RF64';
}

interface WavFormat {
  encoding: SampleEncoding;
  channels: number;
  rate: number;
  blockAlign: number;
}

/** Reads and checks a 'fmt ' chunk body. */
function parseFmt(
  bytes: Uint8Array,
  at: number,
  size: number,
  limits: AudioLimits,
): WavFormat | AudioRejection {
  if (size < 16) return reject('bad-header', `'fmt ' chunk is ${size} bytes; at least 16 expected`);
  const dv = view(bytes);
  let tag = dv.getUint16(at, true);
  const channels = dv.getUint16(at + 2, true);
  const rate = dv.getUint32(at + 4, true);
  const blockAlign = dv.getUint16(at + 12, true);
  const bits = dv.getUint16(at + 14, true);
  if (tag === WAVE_FORMAT_EXTENSIBLE) {
    if (size < 40)
      return reject('bad-header', `WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is ${size} bytes; 40 expected`);
    const guidTag = dv.getUint16(at + 24, true);
    for (let i = 0; i < SUBFORMAT_GUID_TAIL.length; i++) {
      if (bytes[at + 26 + i] !== SUBFORMAT_GUID_TAIL[i]) {
        return reject('unsupported-codec', 'WAVE_FORMAT_EXTENSIBLE with a non-standard subformat GUID');
      }
    }
    tag = guidTag;
  }
  if (tag !== WAVE_FORMAT_PCM && tag !== WAVE_FORMAT_IEEE_FLOAT) {
    const name = CODEC_NAMES.get(tag) ?? `format tag 0x${tag.toString(16).padStart(4, '0')}`;
    return reject('unsupported-codec', `${name} in WAV is not supported (accepted: PCM, IEEE float)`);
  }
  let encoding: SampleEncoding | undefined;
  if (tag === WAVE_FORMAT_PCM) {
    encoding = ({ 8: 'pcm-u8', 16: 'pcm-s16', 24: 'pcm-s24', 32: 'pcm-s32' } as const)[bits as 8];
  } else {
    encoding = ({ 32: 'float32', 64: 'float64' } as const)[bits as 32];
  }
  if (encoding === undefined) {
    const kind = tag === WAVE_FORMAT_PCM ? 'PCM' : 'float';
    return reject('unsupported-codec', `${bits}-bit ${kind} WAV is not supported`);
  }
  if (channels === 0 || channels > limits.maxChannels) {
    return reject('bad-channels', `${channels} channels; accepted: 1 to ${limits.maxChannels}`);
  }
  if (rate < MIN_SAMPLE_RATE || rate > MAX_SAMPLE_RATE) {
    return reject('bad-rate', `sample rate ${rate} Hz; accepted: ${MIN_SAMPLE_RATE} to ${MAX_SAMPLE_RATE}`);
  }
  // The block align fixes where each frame starts; one that disagrees with channels x bits means one
  // of the three is wrong, and guessing which would misread every sample. (The byte rate is redundant
  // and often wrong in the wild: it is not used.)
  const expected = channels * (bits / 8);
  if (blockAlign !== expected) {
    return reject(
      'bad-header',
      `block align ${blockAlign} does not match ${channels} ch x ${bits} bits (${expected} bytes)`,
    );
  }
  return { encoding, channels, rate, blockAlign };
}

/**
 * Decodes RIFF/WAVE (and RF64) bytes. Chunks are walked within the payload: unknown ones are skipped,
 * odd sizes are padded (and a writer that forgot the pad byte is tolerated), 'fmt ' must precede 'data'
 * as RIFF requires, and nothing after 'data' is read.
 *
 * Data size policy:
 * - a placeholder size ({@link UNKNOWN_DATA_SIZES}: what streaming writers leave) means "to the end of
 *   the payload" (RF64: 0xFFFFFFFF defers to the ds64 chunk's 64-bit size, and is a placeholder too
 *   when that is missing or 0);
 * - a real size larger than what arrived is `lying-size` when it is over `maxBytes` (no payload could
 *   ever carry it: a broken or hostile header) and `truncated` otherwise (the upload was cut); the
 *   same holds for any chunk before 'data';
 * - either way the data must be a whole number of frames, else `truncated`: a partial frame means bytes
 *   were lost, and lost bytes may have shifted every sample after them.
 */
export function decodeWav(bytes: Uint8Array, limits: AudioLimits): DecodedAudio | AudioRejection {
  const riff = ascii(bytes, 0, 4);
  if (bytes.length < 12 || ascii(bytes, 8, 4) !== 'WAVE') {
    return reject('bad-header', `${riff} payload of ${bytes.length} bytes has no WAVE form type`);
  }
  const dv = view(bytes);
  let format: WavFormat | undefined;
  let ds64Size: number | undefined;
  let at = 12;
  while (true) {
    if (at + 8 > bytes.length) {
      return reject(
        format ? 'truncated' : 'bad-header',
        format ? "WAV ends before its 'data' chunk" : "WAV has no 'fmt ' chunk",
      );
    }
    const id = ascii(bytes, at, 4);
    const size = dv.getUint32(at + 4, true);
    const body = at + 8;
    const available = bytes.length - body;
    if (id === 'data') {
      if (format === undefined) return reject('bad-header', "'data' chunk comes before the 'fmt ' chunk");
      // undefined: the writer did not know the size when it wrote the header.
      let claimed: number | undefined = size;
      if (riff === 'RF64' && size === 0xffffffff) {
        claimed = ds64Size !== undefined && ds64Size > 0 ? ds64Size : undefined;
      } else if (UNKNOWN_DATA_SIZES.has(size) && (size !== 0 || available > 0)) {
        claimed = undefined;
      }
      let dataBytes = available;
      if (claimed !== undefined && claimed > available) {
        if (claimed > limits.maxBytes) {
          return reject(
            'lying-size',
            `'data' chunk claims ${claimed} bytes; ${available} arrived (limit ${limits.maxBytes})`,
          );
        }
        return reject('truncated', `'data' chunk claims ${claimed} bytes; only ${available} arrived`);
      }
      if (claimed !== undefined) dataBytes = claimed;
      if (dataBytes % format.blockAlign !== 0) {
        return reject(
          'truncated',
          `WAV data is ${dataBytes} bytes, not a whole number of ${format.blockAlign}-byte frames`,
        );
      }
      const frames = dataBytes / format.blockAlign;
      const bad = checkShape(format.rate, format.channels, frames, bytes.length, limits);
      if (bad) return bad;
      const layout = {
        encoding: format.encoding,
        bytesPerSample: format.blockAlign / format.channels,
        bigEndian: false,
      };
      const channels = deinterleave(bytes, body, frames, format.channels, layout);
      return {
        ok: true,
        audio: { sampleRate: format.rate, channels },
        format: 'wav',
        encoding: format.encoding,
      };
    }
    if (size > available) {
      // As for 'data' below: an impossible claim is a broken header, a plausible one a cut upload.
      return reject(
        size > limits.maxBytes ? 'lying-size' : 'truncated',
        `'${chunkName(bytes, at)}' chunk claims ${size} bytes; ${available} are left in the payload`,
      );
    }
    if (id === 'fmt ') {
      if (format !== undefined) return reject('bad-header', "WAV has two 'fmt ' chunks");
      const parsed = parseFmt(bytes, body, size, limits);
      if ('ok' in parsed) return parsed;
      format = parsed;
    } else if (id === 'ds64' && size >= 16) {
      // 64-bit data size at offset 8 (EBU Tech 3306); a high word means more than any payload holds.
      const high = dv.getUint32(body + 12, true);
      ds64Size = high === 0 ? dv.getUint32(body + 8, true) : Number.MAX_SAFE_INTEGER;
    }
    let next = body + size;
    // RIFF pads odd chunks to an even size; some writers forget. Take the pad only when a chunk id follows it.
    if (size % 2 === 1 && !(isChunkId(bytes, next) && !isChunkId(bytes, next + 1))) next += 1;
    at = next;
  }
}

/**
 * Encodes mono samples as a 16-bit PCM WAV (44-byte header), for stored clips. Samples beyond [-1, 1]
 * are clipped and NaN becomes silence. The Buffer owns its whole ArrayBuffer (never a slice of Node's
 * pool), so `buffer` can be transferred to another thread.
 */
export function encodeWav(samples: Float32Array, sampleRate: number): Buffer {
  const dataBytes = samples.length * 2;
  const out = Buffer.alloc(44 + dataBytes);
  writeWavHeader(out, sampleRate, 1, samples.length);
  const pcm = new Int16Array(out.buffer, out.byteOffset + 44, samples.length);
  for (let i = 0; i < samples.length; i++) {
    const clipped = clipSample(samples[i]!);
    pcm[i] = Math.round(clipped < 0 ? clipped * 32768 : clipped * 32767);
  }
  return out;
}
