/** 16-bit PCM WAV as espeak-ng delivers it, read for the audio scenario of `outpost simulate`. */

/**
 * The samples of a 16-bit PCM WAV file, channels averaged to mono. A data chunk whose size runs past the
 * end is read to the end: espeak-ng writes a placeholder size when writing to a pipe.
 */
export function decodeWav(wav: Buffer): { samples: Float32Array; sampleRate: number } {
  if (wav.length < 12 || wav.toString('ascii', 0, 4) !== 'RIFF' || wav.toString('ascii', 8, 12) !== 'WAVE') {
    throw new Error('not a RIFF/WAVE file');
  }
  let format: { channels: number; sampleRate: number; bits: number; tag: number } | undefined;
  let offset = 12;
  while (offset + 8 <= wav.length) {
    const id = wav.toString('ascii', offset, offset + 4);
    const size = wav.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      format = {
        tag: wav.readUInt16LE(body),
        channels: wav.readUInt16LE(body + 2),
        sampleRate: wav.readUInt32LE(body + 4),
        bits: wav.readUInt16LE(body + 14),
      };
    } else if (id === 'data') {
      // 0xfffe is WAVE_FORMAT_EXTENSIBLE, which sox and others use for the same PCM.
      if (format === undefined || (format.tag !== 1 && format.tag !== 0xfffe) || format.bits !== 16) {
        throw new Error('only 16-bit PCM WAV is supported');
      }
      const end = Math.min(wav.length, body + size);
      const frames = Math.floor((end - body) / (2 * format.channels));
      const samples = new Float32Array(frames);
      for (let i = 0; i < frames; i++) {
        let sum = 0;
        for (let c = 0; c < format.channels; c++)
          sum += wav.readInt16LE(body + (i * format.channels + c) * 2);
        samples[i] = sum / format.channels / 32768;
      }
      return { samples, sampleRate: format.sampleRate };
    }
    offset = body + size + (size % 2);
  }
  throw new Error('WAV file has no data chunk');
}
