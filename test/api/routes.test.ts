import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AskQuestion, StoreChanges } from '../../src/api/index.js';
import { parseRange } from '../../src/api/mediaRange.js';
import { type ApiHarness, startApi } from './harness.js';

/** A WAV file: 44-byte header and `samples` 16-bit mono samples at 16 kHz. */
function wav(samples: number): Buffer {
  const data = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) data.writeInt16LE(Math.round(8000 * Math.sin(i / 5)), i * 2);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(16_000, 24);
  header.writeUInt32LE(32_000, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

describe('GET /api/results/:id/media', () => {
  let api: ApiHarness;
  const clip = wav(5000);
  let id: string;
  const media = (range?: string, method = 'GET') =>
    api.get(`/api/results/${id}/media`, { method, headers: range ? { range } : {} });

  beforeAll(async () => {
    api = await startApi();
    id = api.addResult({
      kind: 'audio',
      source: 'hall',
      output: { transcript: 'hello' },
      media: api.addMedia('audio/hall/clip-1.wav', clip),
    });
  });
  afterAll(async () => {
    await api.close();
  });

  it('serves the whole clip with its type, length and Accept-Ranges', async () => {
    const response = await media();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('audio/wav');
    expect(response.headers.get('accept-ranges')).toBe('bytes');
    expect(response.headers.get('content-length')).toBe(String(clip.length));
    expect(Buffer.from(await response.arrayBuffer()).equals(clip)).toBe(true);
    const result = await api.json<{ media: string }>(`/api/results/${id}`);
    expect(result.media).toBe(`/api/results/${id}/media`);
  });

  it('answers byte ranges with 206 and Content-Range', async () => {
    const cases: [string, number, number][] = [
      ['bytes=0-43', 0, 43],
      ['bytes=100-199', 100, 199],
      ['bytes=9000-', 9000, clip.length - 1],
      ['bytes=-44', clip.length - 44, clip.length - 1],
      [`bytes=10-${clip.length + 1000}`, 10, clip.length - 1],
    ];
    for (const [range, start, end] of cases) {
      const response = await media(range);
      expect(response.status, range).toBe(206);
      expect(response.headers.get('content-range'), range).toBe(`bytes ${start}-${end}/${clip.length}`);
      expect(response.headers.get('content-length'), range).toBe(String(end - start + 1));
      expect(Buffer.from(await response.arrayBuffer()).equals(clip.subarray(start, end + 1)), range).toBe(
        true,
      );
    }
  });

  it('answers 416 past the end, and ignores ranges it does not serve', async () => {
    for (const range of [`bytes=${clip.length}-`, 'bytes=99999999-', 'bytes=-0']) {
      const response = await media(range);
      expect(response.status, range).toBe(416);
      expect(response.headers.get('content-range'), range).toBe(`bytes */${clip.length}`);
    }
    for (const range of ['bytes=5-2', 'bytes=0-1,5-6', 'items=0-5', 'bytes=abc', 'bytes=-']) {
      const response = await media(range);
      expect(response.status, range).toBe(200);
      expect((await response.arrayBuffer()).byteLength, range).toBe(clip.length);
    }
  });

  it('answers HEAD without a body', async () => {
    const response = await media(undefined, 'HEAD');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-length')).toBe(String(clip.length));
    expect((await response.arrayBuffer()).byteLength).toBe(0);
  });

  it('says why there is no media', async () => {
    const plain = api.addResult({ output: { description: 'no thumbnail' } });
    const none = await api.get(`/api/results/${plain}/media`);
    expect(none.status).toBe(404);
    expect(await none.json()).toMatchObject({ message: 'this result has no media' });
    const gone = api.addResult({ media: api.addMedia('audio/hall/gone.wav', wav(10)) });
    unlinkSync(api.store.media.resolve('audio/hall/gone.wav'));
    const deleted = await api.get(`/api/results/${gone}/media`);
    expect(deleted.status).toBe(404);
    expect(((await deleted.json()) as { message: string }).message).toMatch(/retention/);
  });

  it('parses ranges as RFC 9110 says', () => {
    expect(parseRange(undefined, 10)).toBe('whole');
    expect(parseRange('bytes=0-0', 10)).toEqual({ start: 0, end: 0 });
    expect(parseRange('bytes=-20', 10)).toEqual({ start: 0, end: 9 });
    expect(parseRange('bytes=0-', 0)).toBe('unsatisfiable');
    expect(parseRange(`bytes=0-${'9'.repeat(30)}`, 10)).toBe('whole');
  });
});

describe('POST /api/ask', () => {
  let api: ApiHarness;
  const asked: AskQuestion[] = [];
  let aborted = 0;

  beforeAll(async () => {
    api = await startApi({
      ask: async (question, signal) => {
        asked.push(question);
        if (question.question === 'slow') {
          await new Promise((resolve) => {
            signal.addEventListener('abort', () => {
              aborted++;
              resolve(undefined);
            });
          });
          throw signal.reason;
        }
        if (question.question === 'late')
          throw Object.assign(new Error('no answer in time'), { statusCode: 504 });
        return { answer: `you asked: ${question.question}`, results: [] };
      },
    });
  });
  afterAll(async () => {
    await api.close();
  });

  const ask = (body: unknown) =>
    api.get('/api/ask', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('passes a valid question on and answers with its JSON', async () => {
    const response = await ask({
      question: 'what happened?',
      since: '2026-03-01T00:00:00Z',
      until: 1772400000000,
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ answer: 'you asked: what happened?', results: [] });
    expect(asked.at(-1)).toEqual({
      question: 'what happened?',
      since: Date.UTC(2026, 2, 1),
      until: 1772400000000,
    });
  });

  it('refuses invalid bodies with 400', async () => {
    const count = asked.length;
    for (const body of [
      {},
      { question: '' },
      { question: 'x'.repeat(501) },
      { question: 'ok', since: 'garbage' },
      { question: 'ok', extra: 1 },
      { question: ['a'] },
      'just text',
    ]) {
      expect((await ask(body)).status, JSON.stringify(body)).toBe(400);
    }
    const big = await ask({ question: 'x'.repeat(100_000) });
    expect(big.status).toBe(413);
    expect(asked.length).toBe(count);
  });

  it("answers the handler's status for its errors", async () => {
    const response = await ask({ question: 'late' });
    expect(response.status).toBe(504);
    expect(await response.json()).toEqual({ error: 'timeout', message: 'no answer in time' });
  });

  it('aborts the question when the client goes', async () => {
    const controller = new AbortController();
    const pending = api
      .get('/api/ask', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ question: 'slow' }),
        signal: controller.signal,
      })
      .catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort();
    await pending;
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(aborted).toBe(1);
  });

  it('is 503 without a model', async () => {
    const bare = await startApi();
    try {
      const response = await bare.get('/api/ask', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ question: 'anyone?' }),
      });
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({
        error: 'unavailable',
        message: 'questions need the local model; inference is off',
      });
    } finally {
      await bare.close();
    }
  });
});

describe('GET /metrics', () => {
  it('serves the Prometheus text when the daemon gives it, else 404', async () => {
    const api = await startApi({ metrics: async () => '# TYPE outpost_up gauge\noutpost_up 1\n' });
    const bare = await startApi();
    try {
      const response = await api.get('/metrics');
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
      expect(await response.text()).toBe('# TYPE outpost_up gauge\noutpost_up 1\n');
      expect((await bare.get('/metrics')).status).toBe(404);
    } finally {
      await api.close();
      await bare.close();
    }
  });
});

describe('the web page files', () => {
  let api: ApiHarness;
  let root: string;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'outpost-web-'));
    writeFileSync(join(root, 'index.html'), '<!doctype html><title>Outpost</title>');
    writeFileSync(join(root, 'app.js'), 'console.log(1);');
    writeFileSync(join(root, 'style.css'), 'body{}');
    writeFileSync(join(root, 'notes.bin'), 'secret-ish');
    writeFileSync(join(root, '.env'), 'TOKEN=1');
    api = await startApi({ webRoot: root, token: 'web-token-0123456789abcdef' });
  });
  afterAll(async () => {
    await api.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('serves index.html, app.js and style.css with their types, without the token', async () => {
    for (const [path, type, body] of [
      ['/', 'text/html; charset=utf-8', '<!doctype html><title>Outpost</title>'],
      ['/index.html', 'text/html; charset=utf-8', '<!doctype html><title>Outpost</title>'],
      ['/app.js', 'text/javascript; charset=utf-8', 'console.log(1);'],
      ['/style.css', 'text/css; charset=utf-8', 'body{}'],
    ] as const) {
      const response = await fetch(`${api.url}${path}`);
      expect(response.status, path).toBe(200);
      expect(response.headers.get('content-type'), path).toBe(type);
      expect(response.headers.get('cache-control'), path).toBe('no-cache');
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(await response.text(), path).toBe(body);
    }
  });

  it('revalidates with the ETag', async () => {
    const first = await fetch(`${api.url}/app.js`);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^W\/"/);
    const again = await fetch(`${api.url}/app.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);
  });

  it('serves nothing outside the folder, hidden, or of an unknown type', async () => {
    for (const path of [
      '/..%2Fpackage.json',
      '/%2e%2e%2fpackage.json',
      '/..%5cpackage.json',
      '/.env',
      '/notes.bin',
      '/index.html%00.js',
      '/missing.js',
      '/web%2Fapp.js',
    ]) {
      const response = await fetch(`${api.url}${path}`);
      expect([400, 401, 404], path).toContain(response.status);
      expect(await response.text(), path).not.toMatch(/TOKEN=1|secret-ish|"name": "outpost"/);
    }
  });

  it('serves the real page from src/api/web by default', async () => {
    const real = await startApi();
    try {
      const response = await fetch(`${real.url}/`);
      expect(response.status).toBe(200);
      expect(await response.text()).toContain('<html');
    } finally {
      await real.close();
    }
  });
});

describe('closing', () => {
  it('is quick and safe twice, with a stream open and a change feed attached', async () => {
    const changes = new StoreChanges();
    const api = await startApi({ changes });
    const response = await api.get('/api/stream');
    expect(response.status).toBe(200);
    const started = Date.now();
    await api.server.close();
    await api.server.close();
    expect(Date.now() - started).toBeLessThan(2000);
    changes.notify(); // nothing listens any more
    await api.close();
  });
});
