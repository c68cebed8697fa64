import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, systemClock } from '../../src/common/index.js';
import { MqttConnection } from '../../src/ingest/index.js';
import { OutboxDrain } from '../../src/publish/index.js';
import { Store } from '../../src/store/index.js';
import { freePort } from '../helpers/mosquitto.js';
import { outboxLimits } from '../helpers/outbox.js';
import { waitFor } from '../helpers/wait.js';

const GATEWAY_ID = 'gw-drain-test';
const TOPIC = 'outpost/gw-drain-test/events/pump1';
const logger = createLogger({ level: 'silent', format: 'json' });

interface RunningBroker {
  broker: Aedes;
  server: net.Server;
  port: number;
  url: string;
  /** Lets the gateway in; until then its connects are refused (so a subscriber can be first). */
  admitGateway(): void;
}

let dir: string;
let store: Store;
let broker: RunningBroker | undefined;
let connection: MqttConnection | undefined;
let drain: OutboxDrain | undefined;
let subscriber: MqttClient | undefined;
let received: number[];

async function startBroker(port: number, { admitGateway = true } = {}): Promise<RunningBroker> {
  const aedes = await Aedes.createBroker();
  let admitted = admitGateway;
  aedes.authenticate = (client, _user, _pass, done) => done(null, client.id !== GATEWAY_ID || admitted);
  const server = net.createServer(aedes.handle);
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const bound = (server.address() as AddressInfo).port;
  return {
    broker: aedes,
    server,
    port: bound,
    url: `mqtt://127.0.0.1:${bound}`,
    admitGateway: () => {
      admitted = true;
    },
  };
}

async function stopBroker(b: RunningBroker): Promise<void> {
  const stopped = new Promise<void>((resolve) => b.server.close(() => resolve()));
  await new Promise<void>((resolve) => b.broker.close(() => resolve()));
  await stopped;
}

function connect(
  port: number,
  publishTimeoutMs?: number,
): { connection: MqttConnection; drain: OutboxDrain } {
  connection = new MqttConnection({
    url: `mqtt://127.0.0.1:${port}`,
    protocolVersion: 4, // aedes refuses MQTT 5
    clientId: GATEWAY_ID,
    rejectUnauthorized: true,
    keepalive: 30,
    reconnectMin: 0.05,
    reconnectMax: 0.2,
    statusTopic: `outpost/${GATEWAY_ID}/status`,
    subscriptions: [],
    logger,
    clock: systemClock,
  });
  drain = new OutboxDrain({
    outbox: store.outbox,
    transport: connection,
    inflight: 32,
    clock: systemClock,
    logger,
    ...(publishTimeoutMs !== undefined && { publishTimeoutMs }),
  });
  return { connection, drain };
}

async function subscribe(url: string): Promise<MqttClient> {
  subscriber = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: 'drain-test-subscriber' });
  subscriber.on('message', (_topic, payload) =>
    received.push((JSON.parse(payload.toString()) as { n: number }).n),
  );
  await subscriber.subscribeAsync('outpost/+/events/#', { qos: 1 });
  return subscriber;
}

function enqueue(from: number, count: number): void {
  store.transaction(() => {
    for (let n = from; n < from + count; n++)
      store.outbox.enqueue(
        { class: 'events', topic: TOPIC, payload: JSON.stringify({ n }), qos: 1, retain: false },
        systemClock.now(),
      );
  });
  drain?.wake();
}

const range = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-drain-'));
  store = Store.open({
    dataDir: dir,
    outbox: outboxLimits(),
  });
  received = [];
});

afterEach(async () => {
  drain?.stop();
  drain = undefined;
  await connection?.close(200);
  connection = undefined;
  await subscriber?.endAsync();
  subscriber = undefined;
  if (broker) await stopBroker(broker);
  broker = undefined;
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('OutboxDrain', () => {
  it('keeps messages while the broker is away and delivers all of them once, in order, when it comes', async () => {
    const port = await freePort();
    const { connection, drain } = connect(port);
    enqueue(0, 500);
    await sleep(400); // several reconnect attempts, all refused
    expect(connection.connected).toBe(false);
    expect(connection.reconnects).toBeGreaterThan(0);
    expect(store.outbox.depth().messages).toBe(500);
    expect(drain.published).toBe(0);

    broker = await startBroker(port, { admitGateway: false });
    await subscribe(broker.url);
    broker.admitGateway();

    await waitFor('all 500 messages at the subscriber', () => received.length >= 500);
    expect(await drain.flush(5_000)).toBe(true);
    await sleep(200); // room for a stray duplicate to show up
    expect(received).toEqual(range(0, 500));
    expect(drain.published).toBe(500);
    expect(store.outbox.depth()).toMatchObject({ messages: 0, bytes: 0, oldestAt: null });
  });

  it('picks up again after the broker goes away and comes back on the same port', async () => {
    broker = await startBroker(0);
    const { connection, drain } = connect(broker.port);
    await connection.waitConnected(5_000);
    await subscribe(broker.url);
    enqueue(0, 100);
    expect(await drain.flush(5_000)).toBe(true);
    await waitFor('the first 100 messages', () => received.length >= 100);

    const port = broker.port;
    await subscriber!.endAsync();
    subscriber = undefined;
    await stopBroker(broker);
    broker = undefined;
    await waitFor('the gateway to notice', () => !connection.connected);

    enqueue(100, 400);
    // Nobody to acknowledge: flush gives up after its timeout and the messages stay.
    expect(await drain.flush(300)).toBe(false);
    expect(store.outbox.depth().messages).toBe(400);

    broker = await startBroker(port, { admitGateway: false });
    await subscribe(broker.url);
    broker.admitGateway();
    expect(await drain.flush(10_000)).toBe(true);
    await waitFor('the 400 queued while away', () => received.length >= 500);
    await sleep(200);
    expect(received).toEqual(range(0, 500));
    expect(store.outbox.depth()).toMatchObject({ messages: 0, bytes: 0, oldestAt: null });
  });

  it('a publish not acknowledged in time is sent again (at least once), and the drain goes on', async () => {
    broker = await startBroker(0);
    // The real broker sits on the first copy of message 3 for 1.5 s before it takes it (and everything after
    // it: aedes handles a client's packets in order), as an overloaded or half-broken broker would.
    let copies = 0;
    broker.broker.authorizePublish = (client, packet, done) => {
      const mine = client?.id === GATEWAY_ID && packet.topic === TOPIC;
      const n = mine ? (JSON.parse(packet.payload.toString()) as { n: number }).n : undefined;
      if (n === 3 && copies++ === 0) return void setTimeout(() => done(null), 1500);
      done(null);
    };
    const { connection, drain } = connect(broker.port, 300);
    await connection.waitConnected(5_000);
    await subscribe(broker.url);
    enqueue(0, 10);

    await waitFor('all 10 at the subscriber', () => new Set(received).size === 10);
    expect(await drain.flush(5_000)).toBe(true);
    await sleep(200);
    expect(copies).toBe(2); // the slow copy, then the one sent again
    expect(drain.stalled).toBe(1);
    // At least once: message 3 may arrive twice; nothing else does, nothing is missing.
    expect(received.filter((n) => n !== 3).sort((a, b) => a - b)).toEqual(
      range(0, 10).filter((n) => n !== 3),
    );
    expect(received.filter((n) => n === 3).length).toBeGreaterThanOrEqual(1);
    expect(store.outbox.depth().messages).toBe(0);
  });

  it('resolves flush at once when the outbox is already empty', async () => {
    const port = await freePort();
    const { drain } = connect(port);
    expect(await drain.flush(0)).toBe(true); // no waiting: a zero timeout would answer false
  });
});
