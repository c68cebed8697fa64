/** The WAV framing every writer of 16-bit PCM shares: the simulator, the microphone, voiced clips. */

/** Writes the canonical 44-byte header of a 16-bit PCM WAV of `frames` frames into `wav`. */
export function writeWavHeader(wav: Buffer, sampleRate: number, channels: number, frames: number): void {
  const dataBytes = frames * channels * 2;
  wav.write('RIFF', 0, 'ascii');
  wav.writeUInt32LE(36 + dataBytes, 4);
  wav.write('WAVEfmt ', 8, 'ascii');
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(channels, 22);
  wav.writeUInt32LE(sampleRate, 24);
  wav.writeUInt32LE(sampleRate * channels * 2, 28);
  wav.writeUInt16LE(channels * 2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36, 'ascii');
  wav.writeUInt32LE(dataBytes, 40);
}
