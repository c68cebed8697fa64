import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeAudioPayload } from '../../../src/pipeline/audio/payload.js';
import type { AudioDecodeResult, AudioLimits } from '../../../src/pipeline/audio/pcm.js';

const LIMITS: AudioLimits = { maxBytes: 16 * 1024 * 1024, maxSeconds: 120, maxChannels: 8 };
const dir = mkdtempSync(join(tmpdir(), 'outpost-payload-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fileNo = 0;
/** Half a second of a full-scale 1 kHz sine from sox, with output options `args`, as a .`ext` file's bytes. */
function sox(ext: string, ...args: string[]): Buffer {
  const out = join(dir, `f${fileNo++}.${ext}`);
  execFileSync('sox', ['-n', ...args, out, 'synth', '0.5', 'sine', '1000'], { stdio: 'pipe' });
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

/** Interleaved little-endian 16-bit samples. */
function s16(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 2);
  for (const [i, v] of values.entries()) out.writeInt16LE(v, i * 2);
  return out;
}

describe('decodeAudioPayload: raw PCM by content type', () => {
  it('audio/L16 is big-endian 16-bit, interleaved, matching the same audio as WAV', () => {
    const raw = join(dir, 'l16.raw');
    execFileSync('sox', [
      '-n',
      '-r',
      '16000',
      '-c',
      '2',
      '-e',
      'signed',
      '-b',
      '16',
      '-B',
      '-t',
      'raw',
      raw,
      'synth',
      '0.5',
      'sine',
      '300',
      'sine',
      '700',
    ]);
    const result = expectOk(
      decodeAudioPayload(readFileSync(raw), 'audio/L16; rate=16000; channels=2', LIMITS),
    );
    expect(result.format).toBe('L16');
    expect(result.audio.sampleRate).toBe(16000);
    expect(result.audio.channels).toHaveLength(2);
    const left = result.audio.channels[0]!;
    expect(left.length).toBe(8000);
    // 300 Hz on the left: a quarter period (13.33 samples) in, the sine is near its peak.
    expect(left[13]).toBeGreaterThan(0.69);
    expect(Math.abs(left[0]!)).toBeLessThan(0.01);
  });

  it('channels default to 1; parameters are case-insensitive and may be quoted', () => {
    const data = Buffer.from([0x7f, 0xff, 0x80, 0x00, 0x00, 0x01]);
    const result = expectOk(decodeAudioPayload(data, 'Audio/L16;RATE="8000"', LIMITS));
    expect(Array.from(result.audio.channels[0]!)).toEqual([32767 / 32768, -1, 1 / 32768]);
  });

  it('audio/L24 is big-endian 24-bit', () => {
    const data = Buffer.from([0x7f, 0xff, 0xff, 0x80, 0x00, 0x00]);
    const result = expectOk(decodeAudioPayload(data, 'audio/L24;rate=48000', LIMITS));
    expect(result.encoding).toBe('pcm-s24');
    expect(result.audio.channels[0]![1]).toBe(-1);
  });

  it('bad parameters are refused with their own codes', () => {
    const data = new Uint8Array(3200);
    expectReject(decodeAudioPayload(data, 'audio/L16', LIMITS), 'bad-content-type');
    expectReject(decodeAudioPayload(data, 'audio/L16;rate=fast', LIMITS), 'bad-content-type');
    expectReject(decodeAudioPayload(data, 'audio/L16;rate=16000;channels', LIMITS), 'bad-content-type');
    expectReject(decodeAudioPayload(data, 'audio/L16x;rate=16000', LIMITS), 'bad-content-type');
    expectReject(decodeAudioPayload(data, 'audio/L16;rate=999999999', LIMITS), 'bad-rate');
    expectReject(decodeAudioPayload(data, 'audio/L16;rate=16000;channels=0', LIMITS), 'bad-channels');
    expectReject(decodeAudioPayload(data, 'audio/L16;rate=16000;channels=12', LIMITS), 'bad-channels');
    expectReject(decodeAudioPayload(data.subarray(1), 'audio/L16;rate=16000', LIMITS), 'truncated');
    expectReject(
      decodeAudioPayload(data, 'audio/L16;rate=16000', { ...LIMITS, maxSeconds: 0.05 }),
      'too-long',
    );
    expectReject(decodeAudioPayload(data, 'audio/L16;rate=16000', { ...LIMITS, maxBytes: 100 }), 'too-large');
  });

  it('other content types are hints: WAV bytes are sniffed, named codecs refused', () => {
    const bytes = sox('wav', '-r', '16000', '-b', '16');
    expectOk(decodeAudioPayload(bytes, 'application/octet-stream', LIMITS));
    expectOk(decodeAudioPayload(bytes, 'audio/mpeg', LIMITS));
    expect(
      expectReject(
        decodeAudioPayload(randomBytes(100).fill(1, 0, 4), 'audio/mpeg', LIMITS),
        'unsupported-codec',
      ),
    ).toContain('MP3');
    expectReject(decodeAudioPayload(randomBytes(100).fill(1, 0, 4), 'text/plain', LIMITS), 'not-audio');
  });
});

describe('decodeAudioPayload: JSON envelope', () => {
  const json = (doc: unknown) => Buffer.from(JSON.stringify(doc));

  it('carries a base64 WAV with ISO ts and prompt', () => {
    const bytes = sox('wav', '-r', '22050', '-b', '16');
    const result = expectOk(
      decodeAudioPayload(
        json({
          audio: bytes.toString('base64'),
          format: 'wav',
          ts: '2024-05-01T12:00:00Z',
          prompt: 'Is the pump ok?',
        }),
        'application/json',
        LIMITS,
      ),
    );
    expect(result).toMatchObject({
      format: 'wav',
      ts: Date.parse('2024-05-01T12:00:00Z'),
      prompt: 'Is the pump ok?',
    });
    expect(result.audio.sampleRate).toBe(22050);
  });

  it('format defaults to wav; a data: URL prefix and line breaks in the base64 are accepted', () => {
    const b64 = sox('wav', '-r', '8000', '-b', '16').toString('base64');
    const wrapped = `data:audio/wav;base64,${b64.replace(/(.{76})/g, '$1\n')}`;
    const result = expectOk(
      decodeAudioPayload(json({ audio: wrapped, ts: 1714564800000 }), undefined, LIMITS),
    );
    expect(result.ts).toBe(1714564800000);
    expect(result.audio.channels[0]!.length).toBe(4000);
  });

  it('s16le, f32le and L16 raw formats take rate and channels from the fields', () => {
    const s16le = expectOk(
      decodeAudioPayload(
        json({ audio: s16([16384, -16384]).toString('base64'), format: 's16le', rate: 16000, channels: 2 }),
        undefined,
        LIMITS,
      ),
    );
    expect(s16le.audio.channels.map((c) => c[0])).toEqual([0.5, -0.5]);
    const f32 = Buffer.alloc(8);
    f32.writeFloatLE(0.25, 0);
    f32.writeFloatLE(-0.75, 4);
    const f32le = expectOk(
      decodeAudioPayload(
        json({ audio: f32.toString('base64'), format: 'f32le', rate: 8000 }),
        undefined,
        LIMITS,
      ),
    );
    expect(Array.from(f32le.audio.channels[0]!)).toEqual([0.25, -0.75]);
    const l16 = expectOk(
      decodeAudioPayload(json({ audio: 'QAA=', format: 'L16', rate: 8000 }), undefined, LIMITS),
    );
    expect(l16.audio.channels[0]![0]).toBe(0.5);
  });

  it('refuses bad envelopes with their codes, never quoting the payload', () => {
    const wavB64 = sox('wav', '-r', '8000', '-b', '16').toString('base64');
    expectReject(decodeAudioPayload(Buffer.from('{"audio": '), undefined, LIMITS), 'bad-json');
    expectReject(decodeAudioPayload(Buffer.from(' {not json}'), undefined, LIMITS), 'bad-json');
    expectReject(decodeAudioPayload(json([1, 2]), undefined, LIMITS), 'not-audio'); // not an envelope
    expectReject(decodeAudioPayload(json({ sound: wavB64 }), undefined, LIMITS), 'bad-field');
    expectReject(decodeAudioPayload(json({ audio: wavB64, format: 'mp3' }), undefined, LIMITS), 'bad-field');
    expectReject(
      decodeAudioPayload(json({ audio: 'AAAA', format: 's16le' }), undefined, LIMITS),
      'bad-field',
    );
    expectReject(
      decodeAudioPayload(json({ audio: 'AAAA', format: 's16le', rate: 8000.5 }), undefined, LIMITS),
      'bad-field',
    );
    expectReject(
      decodeAudioPayload(json({ audio: 'AAAA', format: 's16le', rate: 100 }), undefined, LIMITS),
      'bad-rate',
    );
    expectReject(
      decodeAudioPayload(
        json({ audio: 'AAAA', format: 's16le', rate: 8000, channels: 0 }),
        undefined,
        LIMITS,
      ),
      'bad-channels',
    );
    expectReject(
      decodeAudioPayload(json({ audio: wavB64, ts: 'yesterday' }), undefined, LIMITS),
      'bad-timestamp',
    );
    expectReject(decodeAudioPayload(json({ audio: wavB64, prompt: 42 }), undefined, LIMITS), 'bad-field');
    expectReject(decodeAudioPayload(json({ audio: '' }), undefined, LIMITS), 'empty');
    const reason = expectReject(
      decodeAudioPayload(json({ audio: 'SECRET-TOKEN!' }), undefined, LIMITS),
      'bad-base64',
    );
    expect(reason).not.toContain('SECRET');
    const big = json({ audio: 'A'.repeat(40_000) });
    expectReject(decodeAudioPayload(big, undefined, { ...LIMITS, maxBytes: 10_000 }), 'too-large');
    expectReject(
      decodeAudioPayload(json({ audio: Buffer.from('hello').toString('base64') }), undefined, LIMITS),
      'not-audio',
    );
  });
});
