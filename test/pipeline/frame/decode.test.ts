import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeFramePayload, type FrameDecodeResult } from '../../../src/pipeline/frame/decode.js';

const LIMITS = { maxBytes: 5_000_000, maxPixels: 4096 * 4096 };

function solid(width: number, height: number) {
  return sharp({ create: { width, height, channels: 3, background: { r: 200, g: 40, b: 40 } } });
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** PNG signature + IHDR only: claims a huge image, carries no pixel data. */
function pngBombHeader(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
  ]);
}

function expectReject(result: FrameDecodeResult, code: string): string {
  if (result.ok) throw new Error(`expected ${code}, got ok`);
  expect(result.code).toBe(code);
  expect(result.reason.length).toBeLessThan(200);
  return result.reason;
}

function json(doc: unknown): Buffer {
  return Buffer.from(JSON.stringify(doc));
}

describe('decodeFramePayload: accepted payloads', () => {
  it.each([
    ['jpeg', () => solid(640, 480).jpeg().toBuffer()],
    ['png', () => solid(640, 480).png().toBuffer()],
    ['webp', () => solid(640, 480).webp().toBuffer()],
    ['webp', () => solid(640, 480).webp({ lossless: true }).toBuffer()],
  ] as const)('raw %s bytes are sniffed and sized from the header', async (format, make) => {
    const bytes = await make();
    const result = await decodeFramePayload(bytes, LIMITS);
    expect(result).toMatchObject({ ok: true, format, width: 640, height: 480, force: false });
    if (result.ok) {
      expect(result.image.equals(bytes)).toBe(true);
      expect(result.ts).toBeUndefined();
      expect(result.prompt).toBeUndefined();
    }
  });

  it('a JSON envelope carries base64 image, ISO ts, prompt and force', async () => {
    const bytes = await solid(320, 240).jpeg().toBuffer();
    const payload = json({
      image: bytes.toString('base64'),
      ts: '2024-05-01T12:00:00Z',
      prompt: 'Is the gate open?',
      force: true,
    });
    const result = await decodeFramePayload(payload, LIMITS);
    expect(result).toMatchObject({
      ok: true,
      format: 'jpeg',
      width: 320,
      height: 240,
      ts: Date.parse('2024-05-01T12:00:00Z'),
      prompt: 'Is the gate open?',
      force: true,
    });
    if (result.ok) expect(result.image.equals(bytes)).toBe(true);
  });

  it('accepts epoch-ms ts, a data URL prefix and defaults force to false', async () => {
    const bytes = await solid(64, 48).png().toBuffer();
    const payload = json({ image: `data:image/png;base64,${bytes.toString('base64')}`, ts: 1714564800000 });
    const result = await decodeFramePayload(payload, LIMITS);
    expect(result).toMatchObject({ ok: true, format: 'png', ts: 1714564800000, force: false });
  });
});

describe('decodeFramePayload: hostile payloads', () => {
  it('rejects a 30000x30000 PNG header by pixel count, fast, without image data', async () => {
    const bomb = pngBombHeader(30000, 30000);
    const started = performance.now();
    const result = await decodeFramePayload(bomb, LIMITS);
    const elapsed = performance.now() - started;
    const reason = expectReject(result, 'too-many-pixels');
    expect(reason).toContain('30000x30000');
    expect(reason).toContain(String(LIMITS.maxPixels));
    expect(elapsed).toBeLessThan(100);
  });

  it('rejects a JPEG whose start-of-frame claims 60000x60000', async () => {
    const bytes = Buffer.from(await solid(64, 64).jpeg().toBuffer());
    let sof = -1;
    for (let i = 2; i < bytes.length - 1; i++) {
      if (bytes[i] === 0xff && bytes[i + 1] === 0xc0) {
        sof = i;
        break;
      }
    }
    expect(sof).toBeGreaterThan(0);
    bytes.writeUInt16BE(60000, sof + 5);
    bytes.writeUInt16BE(60000, sof + 7);
    expectReject(await decodeFramePayload(bytes, LIMITS), 'too-many-pixels');
  });

  it('rejects an image over maxBytes, raw or base64', async () => {
    const bytes = await solid(64, 64).jpeg().toBuffer();
    const limits = { maxBytes: 100, maxPixels: LIMITS.maxPixels };
    expect(expectReject(await decodeFramePayload(bytes, limits), 'too-large')).toContain('100 byte limit');
    expectReject(await decodeFramePayload(json({ image: bytes.toString('base64') }), limits), 'too-large');
  });

  it('rejects an empty payload and an empty image field', async () => {
    expectReject(await decodeFramePayload(new Uint8Array(0), LIMITS), 'empty');
    expectReject(await decodeFramePayload(json({ image: '' }), LIMITS), 'empty');
  });

  it('rejects random bytes as not an image, without echoing them', async () => {
    const noise = randomBytes(4096);
    noise[0] = 0x00;
    const reason = expectReject(await decodeFramePayload(noise, LIMITS), 'not-image');
    expect(reason).not.toContain(noise.subarray(0, 8).toString('hex'));
  });

  it('sniffs a short payload at the very end of a larger buffer, as MQTT hands payloads over', async () => {
    // Found by test/daemon/malformed.test.ts: reading a magic number past the payload's end used an offset
    // past the socket buffer and threw, so the daemon rejected it as frame-failed.
    const tail = (bytes: string) => {
      const socket = Buffer.alloc(64);
      socket.write(bytes, 64 - bytes.length, 'latin1');
      return socket.subarray(64 - bytes.length);
    };
    for (const bytes of ['G', 'RIFF', 'GIF8', '\xff\xd8', 'BM\x00\x00\x00']) {
      expectReject(await decodeFramePayload(tail(bytes), LIMITS), 'not-image');
    }
  });

  it('rejects a GIF as unsupported', async () => {
    const gif = await solid(32, 32).gif().toBuffer();
    expect(expectReject(await decodeFramePayload(gif, LIMITS), 'unsupported-format')).toMatch(/GIF/);
  });

  it('rejects bad base64 without echoing it', async () => {
    const secret = 'not*base64!!secret-bytes';
    const reason = expectReject(await decodeFramePayload(json({ image: secret }), LIMITS), 'bad-base64');
    expect(reason).not.toContain(secret);
  });

  it('rejects base64 of non-image bytes, broken JSON, bad fields and bad ts', async () => {
    const text = Buffer.from('hello world').toString('base64');
    expectReject(await decodeFramePayload(json({ image: text }), LIMITS), 'not-image');
    expectReject(await decodeFramePayload(Buffer.from('{"image": '), LIMITS), 'bad-json');
    expectReject(await decodeFramePayload(json({ img: 'x' }), LIMITS), 'bad-field');
    const image = (await solid(8, 8).png().toBuffer()).toString('base64');
    expectReject(await decodeFramePayload(json({ image, force: 'yes' }), LIMITS), 'bad-field');
    expectReject(await decodeFramePayload(json({ image, prompt: 42 }), LIMITS), 'bad-field');
    expectReject(await decodeFramePayload(json({ image, ts: 'yesterday' }), LIMITS), 'bad-timestamp');
    expectReject(await decodeFramePayload(json({ image, ts: -5 }), LIMITS), 'bad-timestamp');
  });

  it('rejects a PNG whose header is damaged as corrupt', async () => {
    const bytes = Buffer.from(await solid(64, 64).png().toBuffer());
    bytes.fill(0, 12, 40); // wipe IHDR
    expectReject(await decodeFramePayload(bytes, LIMITS), 'corrupt');
  });
});
