import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type ApiHarness, openStream, type SseClient, type SseMessage, startApi } from './harness.js';

const opened: { close(): unknown }[] = [];
const harnesses: ApiHarness[] = [];

async function api(options: Parameters<typeof startApi>[0] = {}) {
  const harness = await startApi(options);
  harnesses.push(harness);
  return harness;
}

async function stream(harness: ApiHarness, path = '/api/stream', headers: Record<string, string> = {}) {
  const client = await openStream(`${harness.url}${path}`, headers);
  opened.push(client);
  return client;
}

afterEach(async () => {
  for (const client of opened.splice(0)) client.close();
  for (const harness of harnesses.splice(0)) await harness.close();
});

const data = (m: SseMessage) => JSON.parse(m.data) as { id: string | number; source: string };

describe('GET /api/stream', () => {
  it('sends a result and an event as they are stored, woken by the change notice', async () => {
    // The poll is an hour: only the change notice can bring these in time.
    const harness = await api({ stream: { pollMs: 3_600_000 } });
    const client = await stream(harness);
    expect(client.response.status).toBe(200);
    expect(client.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(client.response.headers.get('cache-control')).toContain('no-cache');
    const started = Date.now();
    const id = harness.addResult({ source: 'gate', output: { description: 'a van at the gate' } });
    const eventId = harness.addEvent({ source: 'boiler', message: 'pressure high' });
    const [result, event] = await client.waitFor(2);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(result!.event).toBe('result');
    expect(JSON.parse(result!.data)).toMatchObject({
      id,
      kind: 'frame',
      source: 'gate',
      output: { description: 'a van at the gate' },
      media: null,
    });
    expect(result!.id).toMatch(/^r\d+\.e\d+$/);
    expect(event!.event).toBe('event');
    expect(JSON.parse(event!.data)).toMatchObject({
      id: eventId,
      source: 'boiler',
      message: 'pressure high',
    });
    expect(event!.id).toBe(result!.id!.replace(/e\d+$/, `e${eventId}`));
  });

  it('starts now by default: what was stored before is not replayed', async () => {
    const harness = await api();
    harness.addResult({ source: 'old' });
    harness.addEvent({ source: 'old' });
    const client = await stream(harness);
    harness.addResult({ source: 'new' });
    const [first] = await client.waitFor(1);
    expect(data(first!).source).toBe('new');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(client.messages).toHaveLength(1);
  });

  it('resumes from Last-Event-ID with nothing missed and nothing repeated', async () => {
    const harness = await api();
    const first = await stream(harness);
    const expected: string[] = [];
    const add = (i: number) => {
      if (i % 3 === 0) expected.push(`event:${harness.addEvent({ source: `s${i}` })}`);
      else expected.push(`result:${harness.addResult({ source: `s${i}` })}`);
    };
    for (let i = 0; i < 5; i++) add(i);
    await first.waitFor(5);
    const lastId = first.lastId!;
    first.close();
    // Stored while the client is away, and while it reconnects.
    for (let i = 5; i < 12; i++) add(i);
    const second = await stream(harness, '/api/stream', { 'last-event-id': lastId });
    for (let i = 12; i < 20; i++) add(i);
    await second.waitFor(15);
    const got = [...first.messages.slice(0, 5), ...second.messages].map((m) => `${m.event}:${data(m).id}`);
    expect(got.sort()).toEqual([...expected].sort());
    expect(new Set(got).size).toBe(20);
    // Each sequence arrives in the order it was stored.
    const order = (kind: string, list: string[]) => list.filter((x) => x.startsWith(kind));
    const received = [...first.messages.slice(0, 5), ...second.messages].map(
      (m) => `${m.event}:${data(m).id}`,
    );
    expect(order('result', received)).toEqual(order('result', expected));
    expect(order('event', received)).toEqual(order('event', expected));
  });

  it('gives a client that dropped before any row its starting point as the first id', async () => {
    const harness = await api();
    const first = await stream(harness);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(first.lastId).toMatch(/^r0\.e0$/);
    first.close();
    const id = harness.addResult();
    const second = await stream(harness, '/api/stream', { 'last-event-id': first.lastId! });
    const [message] = await second.waitFor(1);
    expect(data(message!).id).toBe(id);
  });

  it('replays from a time with ?since=', async () => {
    const harness = await api();
    harness.addResult({ source: 'before' });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const since = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 5));
    harness.addResult({ source: 'after1' });
    harness.addEvent({ source: 'after2' });
    const client = await stream(harness, `/api/stream?since=${encodeURIComponent(since)}`);
    const messages = await client.waitFor(2);
    expect(messages.map((m) => data(m).source)).toEqual(['after1', 'after2']);
  });

  it('polls when no change notice comes', async () => {
    const harness = await api({ changes: undefined, stream: { pollMs: 100 } });
    const client = await stream(harness);
    harness.addResult({ source: 'quiet' });
    const [message] = await client.waitFor(1, 3000);
    expect(data(message!).source).toBe('quiet');
  });

  it('sends heartbeat comments', async () => {
    const harness = await api({ stream: { heartbeatMs: 50 } });
    const client = await stream(harness);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(client.comments).toBeGreaterThanOrEqual(2);
  });

  it('refuses a malformed Last-Event-ID and a bad since, and streams past the limit', async () => {
    const harness = await api({ stream: { maxClients: 1 } });
    for (const [path, headers] of [
      ['/api/stream', { 'last-event-id': "r1' OR 1=1" }],
      ['/api/stream?since=garbage', {}],
      ['/api/stream?since=1&x=1', {}],
    ] as const) {
      const response = await harness.get(path, { headers });
      expect(response.status, path).toBe(400);
    }
    await stream(harness);
    const refused = await harness.get('/api/stream');
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ error: 'unavailable' });
  });

  it('cuts off a client that takes nothing, instead of buffering for it', async () => {
    const harness = await api({ stream: { stallMs: 300 } });
    const { hostname, port } = new URL(harness.url);
    const socket = connect(Number(port), hostname);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('GET /api/stream HTTP/1.1\r\nHost: gateway\r\nAccept: text/event-stream\r\n\r\n');
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.pause(); // reads nothing more: the kernel buffers fill, then the server's socket
    const big = 'x'.repeat(64 * 1024);
    const total = 300;
    for (let i = 0; i < total; i++) harness.addEvent({ source: `e${i}`, detail: { big } });
    // Past the stall limit the server gives up on it; reading again finds the end of the stream.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.resume();
    await closed;
    const events = received.split('\nevent: event\n').length - 1;
    expect(events).toBeGreaterThan(0);
    expect(events).toBeLessThan(total);
    // What did arrive is a prefix, in order.
    const sources = [...received.matchAll(/"source":"(e\d+)"/g)].map((m) => m[1]);
    expect(sources).toEqual(Array.from({ length: sources.length }, (_, i) => `e${i}`));
    // The server is fine and streams to others.
    const client: SseClient = await stream(harness);
    harness.addResult({ source: 'after' });
    expect(data((await client.waitFor(1))[0]!).source).toBe('after');
  });

  it('ends every stream when the server closes', async () => {
    const harness = await api();
    const clients = [await stream(harness), await stream(harness)];
    const started = Date.now();
    await harness.server.close();
    await Promise.all(clients.map((c) => c.ended));
    expect(Date.now() - started).toBeLessThan(3000);
  });
});
