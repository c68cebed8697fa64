import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiTlsError } from '../../src/api/index.js';
import { RateLimiter } from '../../src/api/rateLimiter.js';
import { type ApiHarness, startApi } from './harness.js';

const TOKEN = 'lan-token-0123456789abcdef';

interface Operation {
  security: unknown[];
  parameters?: { name: string; in: string }[];
}
type OpenApi = { paths: Record<string, Record<string, Operation>> };

/** Every documented operation with a concrete path. */
async function operations(api: ApiHarness, token?: string) {
  const doc = (await (
    await api.get('/api/openapi.json', token ? { headers: { authorization: `Bearer ${token}` } } : {})
  ).json()) as OpenApi;
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({
      method: method.toUpperCase(),
      path: path.replace('{id}', 'job-1').replace('{file}', 'app.js'),
      op,
    })),
  );
}

/** A request that reads no more than the status and headers (the stream never ends by itself). */
async function call(api: ApiHarness, method: string, path: string, headers: Record<string, string>) {
  const controller = new AbortController();
  const response = await fetch(`${api.url}${path}`, {
    method,
    headers: { ...headers, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
    body: method === 'POST' ? JSON.stringify({ question: 'anything?' }) : undefined,
    signal: controller.signal,
  });
  controller.abort();
  return response;
}

describe('the bearer token', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi({ token: TOKEN, metrics: () => 'outpost_up 1\n' });
    api.addResult({
      id: 'job-1',
      media: api.addMedia('frames/yard/1.jpg', Buffer.from([0xff, 0xd8, 0xff, 0xd9])),
    });
  });
  afterAll(async () => {
    await api.close();
  });

  it('guards every documented route but /healthz and the page files', async () => {
    const public_ = new Set(['GET /healthz', 'GET /', 'GET /app.js']);
    const ops = await operations(api, TOKEN);
    expect(ops.length).toBeGreaterThanOrEqual(14);
    for (const { method, path, op } of ops) {
      const name = `${method} ${path}`;
      const bare = await call(api, method, path, {});
      const wrong = await call(api, method, path, { authorization: `Bearer ${TOKEN.replace('0', '1')}` });
      const short = await call(api, method, path, { authorization: 'Bearer x' });
      const right = await call(api, method, path, { authorization: `Bearer ${TOKEN}` });
      if (public_.has(name)) {
        expect(bare.status, name).toBe(200);
        expect(op.security, name).toEqual([]);
        continue;
      }
      expect(op.security, name).toEqual([{ bearer: [] }]);
      for (const refused of [bare, wrong, short]) {
        expect(refused.status, name).toBe(401);
        expect(refused.headers.get('www-authenticate'), name).toBe('Bearer');
      }
      // With the token: answered (the ask route says it has no model here).
      expect(right.status, name).toBe(name === 'POST /api/ask' ? 503 : 200);
    }
  });

  it('hides which routes exist from a client without it', async () => {
    expect((await api.get('/api/nothing-here', { headers: { authorization: '' } })).status).toBe(401);
    expect((await api.get('/api/nothing-here')).status).toBe(404);
  });
});

describe('rate limiting', () => {
  it('answers 429 with Retry-After past the limit per client, and never for /healthz', async () => {
    const api = await startApi({ rateLimit: 5, token: TOKEN });
    try {
      for (let i = 0; i < 5; i++) expect((await api.get('/api/status')).status).toBe(200);
      const refused = await api.get('/api/status');
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(await refused.json()).toMatchObject({ error: 'rate-limited' });
      // Guessing tokens counts too.
      expect((await fetch(`${api.url}/api/status`)).status).toBe(429);
      for (let i = 0; i < 20; i++) expect((await api.get('/healthz')).status).toBe(200);
    } finally {
      await api.close();
    }
  });

  it('refills a bucket over time, per client, within bounded memory', () => {
    let now = 0;
    const limiter = new RateLimiter({ perMinute: 60, now: () => now, maxClients: 3 });
    for (let i = 0; i < 60; i++) expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 1 });
    expect(limiter.take('b').ok).toBe(true);
    now += 1000;
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a').ok).toBe(false);
    now -= 5000; // a clock that steps back gives nothing away
    expect(limiter.take('a').ok).toBe(false);
    for (const client of ['c', 'd', 'e', 'f']) limiter.take(client);
    expect(limiter.size).toBe(3);
  });

  it('is off with 0', async () => {
    const api = await startApi({ rateLimit: 0 });
    try {
      for (let i = 0; i < 30; i++) expect((await api.get('/api/status')).status).toBe(200);
    } finally {
      await api.close();
    }
  });
});

describe('CORS', () => {
  const ORIGIN = 'http://dashboard.local:3000';

  it('sends no CORS header unless origins are configured', async () => {
    const api = await startApi();
    try {
      const response = await api.get('/api/results', { headers: { origin: ORIGIN } });
      expect(response.status).toBe(200);
      expect([...response.headers.keys()].filter((k) => k.startsWith('access-control-'))).toEqual([]);
      const preflight = await api.get('/api/results', {
        method: 'OPTIONS',
        headers: { origin: ORIGIN, 'access-control-request-method': 'GET' },
      });
      expect(preflight.status).toBe(404);
      expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await api.close();
    }
  });

  it('allows a configured origin, and only it, with a preflight that needs no token', async () => {
    const api = await startApi({ cors: [ORIGIN], token: TOKEN });
    try {
      const allowed = await api.get('/api/results', { headers: { origin: ORIGIN } });
      expect(allowed.status).toBe(200);
      expect(allowed.headers.get('access-control-allow-origin')).toBe(ORIGIN);
      expect(allowed.headers.get('vary')).toContain('origin');
      const other = await api.get('/api/results', { headers: { origin: 'http://evil.example' } });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
      const preflight = await fetch(`${api.url}/api/stream`, {
        method: 'OPTIONS',
        headers: {
          origin: ORIGIN,
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'authorization, last-event-id',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(ORIGIN);
      expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
      expect(preflight.headers.get('access-control-allow-headers')).toContain('last-event-id');
      // A 401 still carries the header, so the page can read why it was refused.
      const refused = await fetch(`${api.url}/api/results`, { headers: { origin: ORIGIN } });
      expect(refused.status).toBe(401);
      expect(refused.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    } finally {
      await api.close();
    }
  });
});

describe('TLS', () => {
  let dir: string;
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'outpost-tls-'));
    openssl(
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      file('key.pem'),
      '-out',
      file('cert.pem'),
    );
    openssl('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file('other.pem'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTPS with a self-signed certificate', async () => {
    const api = await startApi({ tls: { cert: file('cert.pem'), key: file('key.pem') }, token: TOKEN });
    try {
      expect(api.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const get = (path: string, headers: Record<string, string> = {}) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpsRequest(
            `${api.url}${path}`,
            { ca: readFileSync(file('cert.pem')), headers },
            (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (chunk: string) => {
                body += chunk;
              });
              res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
            },
          );
          req.on('error', reject);
          req.end();
        });
      expect((await get('/healthz')).status).toBe(200);
      expect((await get('/api/status')).status).toBe(401);
      const status = await get('/api/status', { authorization: `Bearer ${TOKEN}` });
      expect(status.status).toBe(200);
      // Plain HTTP to the HTTPS port gets nothing useful.
      const plain = await fetch(api.url.replace('https:', 'http:') + '/healthz').catch(
        (error: Error) => error,
      );
      expect(plain instanceof Error || plain.status === 400).toBe(true);
    } finally {
      await api.close();
    }
  });

  it("refuses to start on a missing file or a key that is not the certificate's, naming the key", async () => {
    const cases: [{ cert: string; key: string }, string, RegExp][] = [
      [{ cert: file('missing.pem'), key: file('key.pem') }, 'http.tls.cert', /cannot read .*missing\.pem/],
      [{ cert: file('cert.pem'), key: file('nope.pem') }, 'http.tls.key', /cannot read .*nope\.pem/],
      [{ cert: file('cert.pem'), key: file('other.pem') }, 'http.tls', /certificate and key/],
      [{ cert: file('key.pem'), key: file('cert.pem') }, 'http.tls', /certificate and key/],
    ];
    for (const [tls, key, message] of cases) {
      const error = await startApi({ tls }).catch((e: unknown) => e);
      expect(error, key).toBeInstanceOf(ApiTlsError);
      expect((error as ApiTlsError).key).toBe(key);
      expect((error as ApiTlsError).code).toBe('OUTPOST_API_TLS');
      expect((error as Error).message).toMatch(message);
    }
  });
});
