import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../../src/common/index.js';
import { decodeAudioPayload } from '../../../src/pipeline/audio/payload.js';
import type { AudioDecodeResult, AudioLimits } from '../../../src/pipeline/audio/pcm.js';
import { encodeWav } from '../../../src/pipeline/audio/wav.js';

const LIMITS: AudioLimits = { maxBytes: 16 * 1024 * 1024, maxSeconds: 120, maxChannels: 8 };
const dir = mkdtempSync(join(tmpdir(), 'outpost-wav-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
/**
 * Half a second of a full-scale 1 kHz sine from sox, with output options `args`, as a .`ext` file's bytes.
 * Without dither (-D): sox otherwise adds random noise when it reduces the depth, and a comparison of depths
 * would depend on the draw (it once reached 2.1 LSB at 8 bits).
 */
function sox(ext: string, ...args: string[]): Buffer {
  const out = join(dir, `f${fileNo++}.${ext}`);
  execFileSync('sox', ['-D', '-n', ...args, out, 'synth', '0.5', 'sine', '1000'], { stdio: 'pipe' });
  return readFileSync(out);
}

function expectOk(result: AudioDecodeResult) {
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.reason}`);
  return result;
}

function expectReject(result: AudioDecodeResult, code: string): string {
  if (result.ok) throw new Error(`expected ${code}, got ok`);
  expect(result.code).toBe(code);
  expect(result.reason.length).toBeLessThan(200);
  return result.reason;
}

interface WavSpec {
  tag?: number;
  channels?: number;
  rate?: number;
  bits?: number;
  blockAlign?: number;
  /** value written in the data chunk's size field; default the data's length */
  dataSize?: number;
  data?: Uint8Array;
  /** chunks before 'fmt ' */
  before?: Buffer[];
  /** chunks between 'fmt ' and 'data' */
  between?: Buffer[];
  /** put 'data' before 'fmt ' */
  dataFirst?: boolean;
  riff?: string;
}

function chunk(id: string, body: Uint8Array, declared = body.length, pad = true): Buffer {
  const head = Buffer.alloc(8);
  head.write(id, 0, 'latin1');
  head.writeUInt32LE(declared, 4);
  const parts = [head, Buffer.from(body)];
  if (pad && body.length % 2 === 1) parts.push(Buffer.alloc(1));
  return Buffer.concat(parts);
}

/** A hand-built WAV, for headers that no tool writes. */
function wav(spec: WavSpec = {}): Buffer {
  const channels = spec.channels ?? 1;
  const bits = spec.bits ?? 16;
  const rate = spec.rate ?? 16000;
  const fmt = Buffer.alloc(16);
  fmt.writeUInt16LE(spec.tag ?? 1, 0);
  fmt.writeUInt16LE(channels, 2);
  fmt.writeUInt32LE(rate, 4);
  fmt.writeUInt32LE((rate * channels * bits) / 8, 8);
  fmt.writeUInt16LE(spec.blockAlign ?? (channels * bits) / 8, 12);
  fmt.writeUInt16LE(bits, 14);
  const data = spec.data ?? new Uint8Array(3200);
  const dataChunk = chunk('data', data, spec.dataSize ?? data.length);
  const body = spec.dataFirst
    ? [dataChunk, chunk('fmt ', fmt)]
    : [...(spec.before ?? []), chunk('fmt ', fmt), ...(spec.between ?? []), dataChunk];
  const riff = Buffer.alloc(12);
  riff.write(spec.riff ?? 'RIFF', 0, 'latin1');
  const total = body.reduce((sum, b) => sum + b.length, 4);
  riff.writeUInt32LE(total, 4);
  riff.write('WAVE', 8, 'latin1');
  return Buffer.concat([riff, ...body]);
}

/** Interleaved little-endian 16-bit samples. */
function s16(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 2);
  for (const [i, v] of values.entries()) out.writeInt16LE(v, i * 2);
  return out;
}

describe('decodeAudioPayload: WAV files written by sox and espeak-ng', () => {
  it.each([
    ['16-bit 48 kHz', ['-r', '48000', '-b', '16'], 48000, 1, 'pcm-s16'],
    ['24-bit 48 kHz (WAVE_FORMAT_EXTENSIBLE)', ['-r', '48000', '-b', '24'], 48000, 1, 'pcm-s24'],
    ['32-bit integer 44.1 kHz', ['-r', '44100', '-b', '32', '-e', 'signed'], 44100, 1, 'pcm-s32'],
    ['8-bit unsigned 8 kHz', ['-r', '8000', '-b', '8', '-e', 'unsigned'], 8000, 1, 'pcm-u8'],
    ['float 32 22.05 kHz', ['-r', '22050', '-b', '32', '-e', 'floating-point'], 22050, 1, 'float32'],
    ['float 64 16 kHz', ['-r', '16000', '-b', '64', '-e', 'floating-point'], 16000, 1, 'float64'],
    ['16-bit stereo 44.1 kHz', ['-r', '44100', '-b', '16', '-c', '2'], 44100, 2, 'pcm-s16'],
    ['24-bit 6 channels 96 kHz', ['-r', '96000', '-b', '24', '-c', '6'], 96000, 6, 'pcm-s24'],
  ] as const)('%s', (_name, args, rate, channels, encoding) => {
    const bytes = sox('wav', ...args);
    const result = expectOk(decodeAudioPayload(bytes, undefined, LIMITS));
    expect(result.format).toBe('wav');
    expect(result.encoding).toBe(encoding);
    expect(result.audio.sampleRate).toBe(rate);
    expect(result.audio.channels).toHaveLength(channels);
    for (const channel of result.audio.channels) {
      expect(channel.length).toBe(rate / 2);
      // Full scale at 48 kHz; where sox converts the rate it leaves 3 dB of headroom (0.707).
      let peak = 0;
      for (const x of channel) peak = Math.max(peak, Math.abs(x));
      expect(peak).toBeGreaterThan(0.69);
      expect(peak).toBeLessThanOrEqual(1);
    }
  });

  it('all integer depths decode to the same samples as the float file', () => {
    const reference = expectOk(
      decodeAudioPayload(sox('wav', '-r', '8000', '-b', '32', '-e', 'floating-point'), undefined, LIMITS),
    ).audio.channels[0]!;
    for (const [bits, tolerance] of [
      ['8', 1 / 64],
      ['16', 1 / 16384],
      ['24', 1e-6],
      ['32', 1e-6],
    ] as const) {
      const encoding = bits === '8' ? 'unsigned' : 'signed';
      const decoded = expectOk(
        decodeAudioPayload(sox('wav', '-r', '8000', '-b', bits, '-e', encoding), undefined, LIMITS),
      ).audio.channels[0]!;
      let worst = 0;
      for (let i = 0; i < reference.length; i++)
        worst = Math.max(worst, Math.abs(decoded[i]! - reference[i]!));
      expect(worst, `${bits}-bit`).toBeLessThan(tolerance);
    }
  });

  it('espeak-ng speech: 22.05 kHz mono 16-bit', () => {
    const out = join(dir, 'speech.wav');
    execFileSync('espeak-ng', ['-w', out, 'The pump in the north shed is running hot.']);
    const result = expectOk(decodeAudioPayload(readFileSync(out), undefined, LIMITS));
    expect(result.audio.sampleRate).toBe(22050);
    expect(result.audio.channels).toHaveLength(1);
    expect(result.audio.channels[0]!.length).toBeGreaterThan(22050);
  });

  it('a WAV piped out of sox (placeholder data size 0x7FFFF000) takes the bytes that arrived', () => {
    const bytes = execFileSync(
      'sox',
      ['-n', '-t', 'wav', '-b', '16', '-r', '16000', '-', 'synth', '0.5', 'sine', '440'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    expect(bytes.readUInt32LE(40)).toBe(0x7ffff000);
    const result = expectOk(decodeAudioPayload(bytes, undefined, LIMITS));
    expect(result.audio.channels[0]!.length).toBe(8000);
  });

  it('a data size of 0xFFFFFFFF (ffmpeg streaming) is accepted for whole frames, truncated otherwise', () => {
    const data = s16([1000, -1000, 2000, -2000]);
    const ok = expectOk(
      decodeAudioPayload(wav({ channels: 2, data, dataSize: 0xffffffff }), undefined, LIMITS),
    );
    expect(ok.audio.channels[0]!.length).toBe(2);
    expect(ok.audio.channels[1]![1]).toBeCloseTo(-2000 / 32768, 6);
    const ragged = Buffer.concat([data, Buffer.from([1, 2])]);
    expectReject(
      decodeAudioPayload(wav({ channels: 2, data: ragged, dataSize: 0xffffffff }), undefined, LIMITS),
      'truncated',
    );
  });

  it('RF64 with a ds64 chunk decodes', () => {
    const data = s16([1, 2, 3, 4]);
    const ds64 = Buffer.alloc(28);
    ds64.writeUInt32LE(data.length, 8);
    const bytes = wav({ riff: 'RF64', before: [chunk('ds64', ds64)], data, dataSize: 0xffffffff });
    expect(expectOk(decodeAudioPayload(bytes, undefined, LIMITS)).audio.channels[0]!.length).toBe(4);
  });

  it('unknown chunks are skipped, odd ones padded, and a forgotten pad byte is tolerated', () => {
    const data = s16([100, 200, 300]);
    const padded = wav({
      data,
      before: [chunk('JUNK', Buffer.alloc(7))],
      between: [chunk('LIST', Buffer.alloc(13))],
    });
    expect(expectOk(decodeAudioPayload(padded, undefined, LIMITS)).audio.channels[0]!.length).toBe(3);
    const unpadded = wav({ data, between: [chunk('bext', Buffer.alloc(5), 5, false)] });
    expect(expectOk(decodeAudioPayload(unpadded, undefined, LIMITS)).audio.channels[0]![2]).toBeCloseTo(
      300 / 32768,
      6,
    );
  });

  it('an odd payload offset (an MQTT payload slice) decodes like an aligned one', () => {
    const bytes = sox('wav', '-r', '16000', '-b', '32', '-e', 'floating-point', '-c', '2');
    const shifted = Buffer.alloc(bytes.length + 1);
    bytes.copy(shifted, 1);
    const a = expectOk(decodeAudioPayload(bytes, undefined, LIMITS));
    const b = expectOk(decodeAudioPayload(shifted.subarray(1), undefined, LIMITS));
    expect(b.audio.channels[1]).toEqual(a.audio.channels[1]);
  });

  it('float samples beyond +-1 are clipped and NaN becomes 0', () => {
    const data = Buffer.alloc(16);
    for (const [i, v] of [0.5, 3, -7, Number.NaN].entries()) data.writeFloatLE(v, i * 4);
    const result = expectOk(decodeAudioPayload(wav({ tag: 3, bits: 32, data }), undefined, LIMITS));
    expect(Array.from(result.audio.channels[0]!)).toEqual([0.5, 1, -1, 0]);
  });
});

describe('decodeAudioPayload: hostile and unsupported WAVs', () => {
  it('a header claiming 4 GB of data is lying-size; a plausible claim that did not arrive is truncated', () => {
    expectReject(decodeAudioPayload(wav({ dataSize: 0xfffffff0 }), undefined, LIMITS), 'lying-size');
    expectReject(decodeAudioPayload(wav({ dataSize: 64_000 }), undefined, LIMITS), 'truncated');
    const lyingChunk = wav({ before: [chunk('LIST', Buffer.alloc(4), 0xfffffff0)] });
    expectReject(decodeAudioPayload(lyingChunk, undefined, LIMITS), 'lying-size');
  });

  it('a real WAV cut in half is truncated', () => {
    const bytes = sox('wav', '-r', '16000', '-b', '16');
    expectReject(decodeAudioPayload(bytes.subarray(0, bytes.length / 2 + 1), undefined, LIMITS), 'truncated');
    expectReject(decodeAudioPayload(bytes.subarray(0, 30), undefined, LIMITS), 'truncated');
    expectReject(decodeAudioPayload(bytes.subarray(0, 40), undefined, LIMITS), 'truncated');
  });

  it('channels: zero and more than maxChannels are bad-channels', () => {
    expectReject(decodeAudioPayload(wav({ channels: 0, blockAlign: 0 }), undefined, LIMITS), 'bad-channels');
    expectReject(decodeAudioPayload(wav({ channels: 9 }), undefined, LIMITS), 'bad-channels');
  });

  it('rates outside 1 kHz..384 kHz are bad-rate', () => {
    expectReject(decodeAudioPayload(wav({ rate: 1_000_000_000 }), undefined, LIMITS), 'bad-rate');
    expectReject(decodeAudioPayload(wav({ rate: 500 }), undefined, LIMITS), 'bad-rate');
    expectReject(decodeAudioPayload(wav({ rate: 0 }), undefined, LIMITS), 'bad-rate');
  });

  it("structure: 'data' before 'fmt ', no 'fmt ', a block align that lies, no WAVE form", () => {
    expect(
      expectReject(decodeAudioPayload(wav({ dataFirst: true }), undefined, LIMITS), 'bad-header'),
    ).toMatch(/before/);
    const noFmt = Buffer.concat([Buffer.from('RIFF\0\0\0\0WAVE', 'latin1'), chunk('data', Buffer.alloc(8))]);
    expectReject(decodeAudioPayload(noFmt, undefined, LIMITS), 'bad-header');
    expect(expectReject(decodeAudioPayload(wav({ blockAlign: 3 }), undefined, LIMITS), 'bad-header')).toMatch(
      /block align/,
    );
    expectReject(decodeAudioPayload(wav({ channels: 2, blockAlign: 2 }), undefined, LIMITS), 'bad-header');
    const avi = Buffer.from('RIFF\0\0\0\0AVI LIST', 'latin1');
    expectReject(decodeAudioPayload(avi, undefined, LIMITS), 'bad-header');
  });

  it.each([
    ['ima-adpcm', 'IMA ADPCM'],
    ['ms-adpcm', 'Microsoft ADPCM'],
    ['mu-law', 'mu-law'],
    ['a-law', 'A-law'],
    ['gsm-full-rate', 'GSM 6.10'],
  ])('%s in WAV is unsupported-codec and named', (encoding, name) => {
    const bytes = sox('wav', '-r', '8000', '-e', encoding);
    expect(expectReject(decodeAudioPayload(bytes, undefined, LIMITS), 'unsupported-codec')).toContain(name);
  });

  it.each([
    ['mp3', 'MP3'],
    ['ogg', 'Ogg'],
    ['flac', 'FLAC'],
    ['aiff', 'AIFF'],
    ['au', 'Sun AU'],
  ])('a .%s file is unsupported-codec by magic number', (ext, name) => {
    const bytes = sox(ext, '-r', '16000');
    expect(expectReject(decodeAudioPayload(bytes, undefined, LIMITS), 'unsupported-codec')).toContain(name);
  });

  it('unusual depths and a foreign extensible subformat are unsupported-codec', () => {
    expect(
      expectReject(
        decodeAudioPayload(wav({ bits: 12, blockAlign: 2 }), undefined, LIMITS),
        'unsupported-codec',
      ),
    ).toContain('12-bit');
    const bytes = sox('wav', '-r', '48000', '-b', '24');
    bytes[44 + 4] = 0x99; // a byte of the subformat GUID's constant tail
    expectReject(decodeAudioPayload(bytes, undefined, LIMITS), 'unsupported-codec');
  });

  it('limits: too-long from the header, too-large from the length, empty', () => {
    const bytes = sox('wav', '-r', '16000', '-b', '16'); // 0.5 s
    expectReject(decodeAudioPayload(bytes, undefined, { ...LIMITS, maxSeconds: 0.25 }), 'too-long');
    expectReject(decodeAudioPayload(bytes, undefined, { ...LIMITS, maxBytes: 1000 }), 'too-large');
    expectReject(decodeAudioPayload(new Uint8Array(0), undefined, LIMITS), 'empty');
    expectReject(decodeAudioPayload(wav({ data: new Uint8Array(0) }), undefined, LIMITS), 'empty');
  });

  it('random bytes are not-audio; nothing thrown for thousands of mutated WAVs', () => {
    const random = mulberry32(42);
    for (let i = 0; i < 50; i++) {
      const bytes = randomBytes(1 + Math.floor(random() * 4000));
      bytes[0] = 0x00; // not '{', not a known magic
      expectReject(decodeAudioPayload(bytes, undefined, LIMITS), 'not-audio');
    }
    const seeds = [
      wav({ data: s16([1, 2, 3, 4]) }),
      sox('wav', '-r', '48000', '-b', '24', '-c', '2'),
      sox('wav', '-r', '8000', '-e', 'ima-adpcm'),
    ];
    const codes = new Set<string>();
    for (let i = 0; i < 3000; i++) {
      const bytes = Buffer.from(seeds[i % seeds.length]!.subarray(0, 200 + Math.floor(random() * 2000)));
      const edits = 1 + Math.floor(random() * 6);
      for (let e = 0; e < edits; e++)
        bytes[Math.floor(random() * Math.min(bytes.length, 90))] = Math.floor(random() * 256);
      const result = decodeAudioPayload(bytes, undefined, { ...LIMITS, maxSeconds: 5 });
      if (!result.ok) {
        expect(result.reason.length).toBeLessThan(200);
        codes.add(result.code);
      } else {
        for (const channel of result.audio.channels)
          for (const x of channel) expect(Math.abs(x) <= 1).toBe(true);
      }
    }
    expect(codes.size).toBeGreaterThan(4);
  });
});

describe('encodeWav', () => {
  it('writes 16-bit mono PCM that sox reads and the decoder round-trips, clipped', () => {
    const samples = new Float32Array([0, 0.5, -0.5, 2, -2, Number.NaN, 1, -1]);
    const bytes = encodeWav(samples, 16000);
    expect(bytes.byteOffset).toBe(0);
    expect(bytes.buffer.byteLength).toBe(bytes.length); // owns its memory: safe to transfer to a thread
    const file = join(dir, 'encoded.wav');
    writeFileSync(file, bytes);
    const info = execFileSync('soxi', [file]).toString();
    expect(info).toMatch(/Channels\s+: 1/);
    expect(info).toMatch(/Sample Rate\s+: 16000/);
    expect(info).toMatch(/16-bit Signed Integer PCM/);
    const decoded = expectOk(decodeAudioPayload(bytes, undefined, LIMITS)).audio.channels[0]!;
    expect(Array.from(decoded).map((x) => Math.round(x * 32768))).toEqual([
      0, 16384, -16384, 32767, -32768, 0, 32767, -32768,
    ]);
  });
});
