import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorMessage } from '../../src/publish/index.js';
import { type Collector, collect, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

/** Each payload a stranger or a broken sensor might send, with the reject code the gateway must give. */
const hostile: { name: string; topic: string; payload: string | Buffer; code: string }[] = [
  { name: 'not JSON', topic: 'sensors/pump1/temperature', payload: 'hello', code: 'not-json' },
  { name: 'NaN', topic: 'sensors/pump1/temperature', payload: 'NaN', code: 'not-json' },
  { name: 'Infinity', topic: 'sensors/pump1/temperature', payload: '{"value": Infinity}', code: 'not-json' },
  { name: 'a string', topic: 'sensors/pump1/temperature', payload: '"21.5"', code: 'wrong-type' },
  {
    name: 'value as a string',
    topic: 'sensors/pump1/temperature',
    payload: '{"value":"NaN"}',
    code: 'wrong-type',
  },
  { name: 'beyond float range', topic: 'sensors/pump1/temperature', payload: '1e999', code: 'non-finite' },
  {
    name: 'metric as an object',
    topic: 'sensors/pump1',
    payload: '{"temperature":{"v":1}}',
    code: 'wrong-type',
  },
  {
    name: 'nested 10k deep',
    topic: 'sensors/pump1/temperature',
    payload: `${'['.repeat(10_000)}${']'.repeat(10_000)}`,
    code: 'wrong-type',
  },
  {
    name: 'object nested 10k deep',
    topic: 'sensors/pump1',
    payload: `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`,
    code: 'wrong-type',
  },
  {
    name: '2 MB payload',
    topic: 'sensors/pump1/temperature',
    payload: Buffer.alloc(2 * 1024 * 1024, 0x31),
    code: 'too-large',
  },
  {
    name: 'epoch seconds ts',
    topic: 'sensors/pump1/temperature',
    payload: '{"value":1,"ts":1700000000}',
    code: 'bad-timestamp',
  },
  {
    name: 'ts in 2099',
    topic: 'sensors/pump1/temperature',
    payload: '{"value":1,"ts":"2099-01-01T00:00:00Z"}',
    code: 'bad-timestamp',
  },
  {
    name: 'ts not a date',
    topic: 'sensors/pump1/temperature',
    payload: '{"value":1,"ts":"yesterday"}',
    code: 'bad-timestamp',
  },
  { name: 'empty', topic: 'sensors/pump1/temperature', payload: '', code: 'empty' },
  {
    name: 'invalid UTF-8',
    topic: 'sensors/pump1/temperature',
    payload: Buffer.from([0xff, 0xfe, 0x31]),
    code: 'not-json',
  },
];

describe('hostile input on sensor routes', () => {
  let gateway: TestGateway;
  let observer: Collector;

  beforeAll(async () => {
    gateway = await startGateway();
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/errors');
  });
  afterAll(async () => {
    await observer.end();
    expect(await gateway.stop()).toBe(0);
  });

  it('rejects each with a reason on the errors topic, counts it, and keeps running', async () => {
    const sensor = await publisher(gateway.mqttUrl);
    for (const h of hostile) await sensor.publishAsync(h.topic, h.payload, { qos: 1 });
    // A good reading after the garbage still flows.
    await sensor.publishAsync('sensors/pump1/temperature', '21.5', { qos: 1 });
    await sensor.endAsync();

    await waitFor('every rejection on MQTT', () => observer.messages.length === hostile.length);
    const errors = observer.json<ErrorMessage>('outpost/gw-test/errors');
    expect(errors.map((e) => e.code)).toEqual(hostile.map((h) => h.code));
    for (const [i, error] of errors.entries()) {
      expect(error.topic).toBe(hostile[i]!.topic);
      expect(error.size).toBe(Buffer.byteLength(hostile[i]!.payload));
      expect(error.reason.length).toBeGreaterThan(5);
      expect(error.reason.length).toBeLessThan(200);
      expect(JSON.stringify(error)).not.toContain('1111111111'); // never the raw payload
    }

    await waitFor(
      'the good reading',
      () => gateway.sql<{ n: number }>('SELECT count(*) AS n FROM readings')[0]!.n === 1,
    );
    const stored = gateway.sql<{ code: string }>('SELECT code FROM rejects ORDER BY id');
    expect(stored.map((r) => r.code)).toEqual(hostile.map((h) => h.code));

    const status = (await (await fetch(`${gateway.httpUrl}/api/status`)).json()) as {
      state: string;
      rejects: Record<string, number>;
      broker: { connected: boolean };
    };
    expect(status.state).toBe('running');
    expect(status.broker.connected).toBe(true);
    const expected: Record<string, number> = {};
    for (const h of hostile) expected[h.code] = (expected[h.code] ?? 0) + 1;
    expect(status.rejects).toEqual(expected);
    expect((await fetch(`${gateway.httpUrl}/healthz`)).status).toBe(200);
  });
});
