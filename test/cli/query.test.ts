import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/mosquitto.js';

const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `outpost query ...` as a child process, with only PATH, HOME and `env` in its environment. */
function query(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', tsx, main, 'query', ...args],
      { timeout: 30_000, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const MINUTE = 60_000;

/** A page as GET /api/results is specified to answer it. */
const RESULTS_PAGE = {
  results: [
    {
      id: 'a',
      kind: 'frame',
      source: 'cam-1',
      ts: '2024-05-01T12:00:05.123Z',
      output: { description: 'A person\nopens the gate   and walks in.' },
    },
    {
      id: 'b',
      kind: 'audio',
      source: 'mic-1',
      ts: '2024-05-01T11:00:00.000Z',
      output: { transcript: 'stop the pump' },
    },
    {
      id: 'c',
      kind: 'frame',
      source: 'cam-1',
      ts: '2024-05-01T10:00:00.000Z',
      output: { description: 'x'.repeat(300) },
    },
    { id: 'd', kind: 'other', source: 'cam-2', ts: '2024-05-01T09:00:00.000Z', output: { objects: ['car'] } },
  ],
  next: 'next-page',
};

describe('outpost query against a running gateway', () => {
  let gateway: TestGateway;
  let url: string;
  let db: Database.Database;
  const now = Date.now();

  beforeAll(async () => {
    gateway = await startGateway();
    url = gateway.httpUrl;
    // Rows as the pipeline would have stored them, through a second connection to the gateway's database.
    db = new Database(join(gateway.dataDir, 'outpost.db'));
    db.pragma('busy_timeout = 5000');
    const event = db.prepare(
      `INSERT INTO events (ts, created_at, source, kind, severity, message, detail)
       VALUES (?, ?, ?, ?, ?, ?, '{}')`,
    );
    event.run(now - 120 * MINUTE, now, 'pump1', 'anomaly', 'warning', 'temperature 91.2 above 80.0');
    event.run(now - 30 * MINUTE, now, 'cam-1', 'alert', 'critical', 'person at\nthe gate');
    event.run(now - 5 * MINUTE, now, 'pump1', 'anomaly', 'info', 'pressure back to normal');
    const result = db.prepare(
      `INSERT INTO results (id, kind, source, ts, created_at, model, variant, latency_ms, output)
       VALUES (?, ?, ?, ?, ?, 'gemma-3n-e2b', 'e2b', 1200, ?)`,
    );
    result.run(
      'r-frame',
      'frame',
      'cam-1',
      now - 30 * MINUTE,
      now,
      JSON.stringify({ description: 'A person at the gate.' }),
    );
    result.run(
      'r-audio',
      'audio',
      'mic-1',
      now - 10 * MINUTE,
      now,
      JSON.stringify({ transcript: 'stop the pump' }),
    );
    result.run(
      'r-digest',
      'digest',
      'pump1',
      now - 5 * MINUTE,
      now,
      JSON.stringify({ summary: 'Quiet hour.' }),
    );
  });

  afterAll(async () => {
    db?.close();
    await gateway?.stop();
  });

  it('prints the status as key lines, or as JSON', async () => {
    const [human, json] = await Promise.all([
      query(['status', '--url', url]),
      query(['status', '--url', url, '--json']),
    ]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^gateway: gw-test \S+, running, up \d+m \d+s$/m);
    expect(human.stdout).toMatch(
      /^broker: {2}mqtt:\/\/127\.0\.0\.1:\d+ connected \(embedded\), 0 reconnects$/m,
    );
    expect(human.stdout).toMatch(/^queues: {2}journal 0 pending, outbox 0 messages$/m);
    expect(human.stdout).toMatch(/^memory: {2}rss \d+ MB, heap \d+ MB$/m);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      gatewayId: 'gw-test',
      state: 'running',
      broker: { connected: true },
    });
  });

  it('lists events newest first, filtered, as a table or JSON, with a cursor to the next page', async () => {
    const [all, pump, recent, page] = await Promise.all([
      query(['events'], { OUTPOST_URL: url }),
      query(['events', '--url', url, '--source', 'pump1', '--json']),
      query(['events', '--url', url, '--since', '1h', '--json']),
      query(['events', '--url', url, '--limit', '2']),
    ]);

    expect(all.code).toBe(0);
    const lines = all.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+SOURCE\s+SEVERITY\s+MESSAGE$/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ {2}pump1 {3}info {6}pressure back to normal$/),
      expect.stringMatching(/Z {2}cam-1 {3}critical {2}person at the gate$/),
      expect.stringMatching(/Z {2}pump1 {3}warning {3}temperature 91\.2 above 80\.0$/),
    ]);
    expect(all.stderr).toBe('');

    const pumpEvents = JSON.parse(pump.stdout) as { events: { source: string; message: string }[] };
    expect(pumpEvents.events.map((e) => e.message)).toEqual([
      'pressure back to normal',
      'temperature 91.2 above 80.0',
    ]);

    // `1h` is sent as the ISO time an hour ago: the 2-hour-old event is left out.
    const recentEvents = JSON.parse(recent.stdout) as { events: { message: string }[] };
    expect(recentEvents.events.map((e) => e.message)).toEqual([
      'pressure back to normal',
      'person at\nthe gate',
    ]);

    expect(page.stdout.trimEnd().split('\n')).toHaveLength(3);
    const cursor = /^more: --cursor (\d+)$/.exec(page.stderr.trim())?.[1];
    expect(cursor).toBeDefined();
    const rest = await query(['events', '--url', url, '--limit', '2', '--cursor', cursor!]);
    expect(rest.stdout).toMatch(/temperature 91\.2 above 80\.0/);
    expect(rest.stdout.trimEnd().split('\n')).toHaveLength(2);
  });

  it('lists results with a one-line summary of each finding', async () => {
    const [human, json, frames] = await Promise.all([
      query(['results', '--url', url]),
      query(['results', '--url', url, '--json']),
      query(['results', '--url', url, '--kind', 'frame', '--json']),
    ]);
    expect(human.code).toBe(0);
    const lines = human.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+KIND\s+SOURCE\s+SUMMARY$/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/Z {2}digest {2}pump1 {3}Quiet hour\.$/),
      expect.stringMatching(/Z {2}audio {3}mic-1 {3}stop the pump$/),
      expect.stringMatching(/Z {2}frame {3}cam-1 {3}A person at the gate\.$/),
    ]);
    expect((JSON.parse(json.stdout) as { results: unknown[] }).results).toHaveLength(3);
    const onlyFrames = JSON.parse(frames.stdout) as { results: { id: string }[] };
    expect(onlyFrames.results.map((r) => r.id)).toEqual(['r-frame']);
  });

  it('refuses bad usage with exit code 2 before calling the gateway', async () => {
    const runs = await Promise.all([
      query(['events', '--url', url, '--limit', '0']),
      query(['events', '--url', url, '--since', 'yesterday']),
      query(['status', '--url', 'ftp://gateway']),
      query(['reboot']),
      query(['ask', '--url', url]),
      query(['results', '--url', url, '--colour']),
    ]);
    expect(runs.map((r) => r.code)).toEqual([2, 2, 2, 2, 2, 2]);
    expect(runs[0]!.stderr).toMatch(/--limit <n>' argument '0' is invalid\. must be a positive integer/);
    expect(runs[1]!.stderr).toMatch(/must be ISO 8601, epoch milliseconds, or a span ago/);
    expect(runs[2]!.stderr).toMatch(/must be an http:\/\/ or https:\/\/ URL/);
    expect(runs[3]!.stderr).toMatch(/unknown command 'reboot'/);
    expect(runs[4]!.stderr).toMatch(/missing required argument 'question'/);
    expect(runs[5]!.stderr).toMatch(/unknown option '--colour'/);
  });
});

describe('outpost query against a gateway with a token', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startGateway({
      OUTPOST_HTTP_TOKEN: 's3cret-token-0123456789',
      OUTPOST_HTTP_HOST: '127.0.0.1',
    });
  });

  afterAll(async () => {
    await gateway?.stop();
  });

  it('sends --token or $OUTPOST_HTTP_TOKEN as a bearer token; without one it exits 1 with the reason', async () => {
    const url = gateway.httpUrl;
    const [none, flag, env, wrong] = await Promise.all([
      query(['status', '--url', url]),
      query(['status', '--url', url, '--token', 's3cret-token-0123456789', '--json']),
      query(['events', '--json'], { OUTPOST_URL: url, OUTPOST_HTTP_TOKEN: 's3cret-token-0123456789' }),
      query(['status', '--url', url, '--token', 'guess']),
    ]);
    expect(none.code).toBe(1);
    expect(none.stdout).toBe('');
    expect(none.stderr).toBe(
      'outpost: 401: a valid bearer token is required (give it with --token or $OUTPOST_HTTP_TOKEN)\n',
    );
    expect(flag.code).toBe(0);
    expect(JSON.parse(flag.stdout)).toMatchObject({ gatewayId: 'gw-test', http: { auth: true } });
    expect(env.code).toBe(0);
    expect(JSON.parse(env.stdout)).toEqual({ events: [], next: null });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe('outpost: 401: a valid bearer token is required\n');
  });
});

describe('outpost query without a gateway', () => {
  it('exits 1 with one line naming the URL and the reason', async () => {
    const port = await freePort();
    const run = await query(['status', '--url', `http://127.0.0.1:${port}`]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toBe(`outpost: cannot reach the gateway at http://127.0.0.1:${port}: ECONNREFUSED\n`);
  });
});

/**
 * GET /api/results and POST /api/ask are not served by the gateway yet (ask also needs the model behind it):
 * a plain HTTP server stands in for them here, answering as those routes are specified, and records what the
 * command sends.
 */
describe('outpost query results and ask (a stand-in for routes still being written)', () => {
  let server: Server;
  let url: string;
  const requests: { method?: string; url?: string; authorization?: string; body: unknown }[] = [];

  beforeAll(async () => {
    server = createServer(async (request: IncomingMessage, response) => {
      let text = '';
      for await (const chunk of request) text += chunk;
      requests.push({
        method: request.method,
        url: request.url,
        authorization: request.headers.authorization,
        body: text ? JSON.parse(text) : undefined,
      });
      if (request.url?.startsWith('/api/results')) {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify(RESULTS_PAGE));
        return;
      }
      const body = JSON.parse(text) as { question: string };
      if (body.question.includes('fail')) {
        response.writeHead(503, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ error: 'unavailable', message: 'no model is loaded' }));
        return;
      }
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({ answer: 'Pump 1 ran hot at 14:02, then recovered.', results: ['r1', 'r7'] }),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends every results filter and prints a table with one summary line per finding', async () => {
    const run = await query(
      [
        'results',
        '--url',
        `${url}/`,
        '--kind',
        'frame',
        '--source',
        'cam-1',
        '--since',
        '2024-05-01',
        '--until',
        '2h',
        '--label',
        'person',
        '--q',
        'gate open',
        '--limit',
        '3',
        '--cursor',
        'abc',
      ],
      { OUTPOST_HTTP_TOKEN: 'tok' },
    );
    expect(run.code).toBe(0);
    const sent = new URL(requests.at(-1)!.url!, url);
    expect(sent.pathname).toBe('/api/results');
    expect(Object.fromEntries(sent.searchParams)).toEqual({
      kind: 'frame',
      source: 'cam-1',
      since: '2024-05-01',
      until: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      label: 'person',
      q: 'gate open',
      limit: '3',
      cursor: 'abc',
    });
    expect(Date.now() - Date.parse(sent.searchParams.get('until')!)).toBeGreaterThanOrEqual(2 * 3600_000);
    expect(requests.at(-1)!.authorization).toBe('Bearer tok');
    expect(run.stdout).toBe(
      [
        'TIME                  KIND   SOURCE  SUMMARY',
        '2024-05-01T12:00:05Z  frame  cam-1   A person opens the gate and walks in.',
        '2024-05-01T11:00:00Z  audio  mic-1   stop the pump',
        `2024-05-01T10:00:00Z  frame  cam-1   ${'x'.repeat(99)}…`,
        '2024-05-01T09:00:00Z  other  cam-2   {"objects":["car"]}',
        '',
      ].join('\n'),
    );
    expect(run.stderr).toBe('more: --cursor next-page\n');
  });

  it('posts the question with its time range and prints the answer and the results it used', async () => {
    const run = await query(
      [
        'ask',
        'what',
        'happened',
        'to',
        'pump1?',
        '--since',
        '2024-05-01T00:00:00Z',
        '--until',
        '1714608000000',
      ],
      { OUTPOST_URL: url, OUTPOST_HTTP_TOKEN: 'tok' },
    );
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('Pump 1 ran hot at 14:02, then recovered.\n\nresults: r1, r7\n');
    expect(requests.at(-1)).toEqual({
      method: 'POST',
      url: '/api/ask',
      authorization: 'Bearer tok',
      body: { question: 'what happened to pump1?', since: '2024-05-01T00:00:00Z', until: '1714608000000' },
    });
  });

  it('prints the JSON answer with --json, and the gateway’s reason with exit 1 when it cannot answer', async () => {
    const [json, failed] = await Promise.all([
      query(['ask', 'why?', '--url', url, '--json']),
      query(['ask', 'please fail', '--url', url]),
    ]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({
      answer: 'Pump 1 ran hot at 14:02, then recovered.',
      results: ['r1', 'r7'],
    });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toBe('outpost: 503: no model is loaded\n');
  });
});
