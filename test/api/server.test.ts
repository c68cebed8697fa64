import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = 'field-token-0123456789';

describe('HTTP API with a bearer token', () => {
  let gateway: TestGateway;
  const get = (path: string, token?: string) =>
    fetch(`${gateway.httpUrl}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});

  beforeAll(async () => {
    // Tests bind loopback only; with a token the default would be 0.0.0.0.
    gateway = await startGateway({ OUTPOST_HTTP_TOKEN: TOKEN, OUTPOST_HTTP_HOST: '127.0.0.1' });
    const sensor = await publisher(gateway.mqttUrl);
    const start = Date.UTC(2026, 0, 1);
    for (let i = 0; i < 120; i++) {
      await sensor.publishAsync(
        'sensors/boiler/temp',
        JSON.stringify({ value: i % 10, ts: start + i * 1000 }),
        { qos: 1 },
      );
    }
    await sensor.endAsync();
    await waitFor(
      'readings',
      () => gateway.sql<{ n: number }>('SELECT count(*) AS n FROM readings')[0]!.n === 120,
    );
  });
  afterAll(async () => {
    expect(await gateway.stop()).toBe(0);
  });

  it('guards every route but /healthz', async () => {
    expect((await get('/healthz')).status).toBe(200);
    for (const path of ['/readyz', '/api/status', '/api/readings', '/api/events']) {
      const refused = await get(path);
      expect(refused.status, path).toBe(401);
      expect(refused.headers.get('www-authenticate')).toBe('Bearer');
      expect((await get(path, 'wrong-token-0123456789')).status, path).toBe(401);
      expect((await get(path, TOKEN)).status, path).toBe(200);
    }
  });

  it('answers bucketed readings and lists the series', async () => {
    const from = Date.UTC(2026, 0, 1);
    const body = (await (
      await get(`/api/readings?series=boiler/temp&from=${from}&to=${from + 120_000}&bucket=1m`, TOKEN)
    ).json()) as {
      points: { t: string; count: number; min: number; max: number; mean: number }[];
    };
    expect(body.points).toEqual([
      { t: '2026-01-01T00:00:00.000Z', count: 60, min: 0, max: 9, mean: 4.5 },
      { t: '2026-01-01T00:01:00.000Z', count: 60, min: 0, max: 9, mean: 4.5 },
    ]);
    const iso = (await (
      await get(
        '/api/readings?series=boiler/temp&from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:30Z&bucket=30s',
        TOKEN,
      )
    ).json()) as {
      points: { count: number }[];
    };
    expect(iso.points).toEqual([expect.objectContaining({ count: 30 })]);
    const list = (await (await get('/api/readings', TOKEN)).json()) as { series: { series: string }[] };
    expect(list.series.map((s) => s.series)).toEqual(['boiler/temp']);
  });

  it('turns bad parameters into 400 with a reason, and never into SQL', async () => {
    const cases: [string, RegExp][] = [
      ['/api/readings?series=boiler/temp&from=yesterday', /from/],
      ['/api/readings?series=boiler/temp&bucket=0', /bucket/],
      ['/api/readings?series=boiler/temp&from=0&to=99999999999999&bucket=1s', /buckets/],
      ['/api/readings?series=nodevice', /series/],
      ['/api/readings?series=boiler/temp&to=1&from=2', /after/],
      ['/api/events?limit=100000', /limit/],
      ['/api/events?since=soon', /since/],
      ['/api/events?sort=desc', /sort|additional/i],
    ];
    for (const [path, reason] of cases) {
      const response = await get(path, TOKEN);
      expect(response.status, path).toBe(400);
      expect(((await response.json()) as { message: string }).message, path).toMatch(reason);
    }
    const injection = encodeURIComponent("boiler/temp' OR 1=1; DROP TABLE readings; --");
    const answer = await get(`/api/readings?series=${injection}`, TOKEN);
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { points: unknown[] }).points).toEqual([]);
    expect(gateway.sql<{ n: number }>('SELECT count(*) AS n FROM readings')[0]!.n).toBe(120);
  });

  it('publishes a retained health message with queue depths and memory', async () => {
    const observer = await collect(gateway.mqttUrl, 'outpost/gw-test/health');
    await waitFor('the retained health message', () => observer.messages.length > 0);
    const [health] = observer.json<{
      gatewayId: string;
      memory: { rssBytes: number };
      queues: { journalPending: number };
    }>('outpost/gw-test/health');
    expect(observer.messages[0]!.retain).toBe(true);
    expect(health!.gatewayId).toBe('gw-test');
    expect(health!.memory.rssBytes).toBeGreaterThan(10_000_000);
    expect(health!.queues.journalPending).toBe(0);
    await observer.end();
  });
});
