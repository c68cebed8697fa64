import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import { createLogger, mulberry32, gaussian as normalSource } from '../../src/common/index.js';
import { loadConfig } from '../../src/config/index.js';
import { Daemon, type DiskProbe } from '../../src/daemon/index.js';
import type { MemoryProbe } from '../../src/inference/index.js';
import { waitFor } from './wait.js';

export interface TestGateway {
  daemon: Daemon;
  dataDir: string;
  mqttUrl: string;
  httpUrl: string;
  /** Reads the gateway's database (a second, read-only connection, as an operator would). */
  sql<T = Record<string, unknown>>(query: string, ...params: unknown[]): T[];
  stop(): Promise<number>;
}

/** An in-process gateway on a temp data folder; `env` holds OUTPOST_* settings on top of test defaults. */
export async function startGateway(
  env: Record<string, string> = {},
  options: {
    waitConnected?: boolean;
    memoryProbe?: MemoryProbe;
    workerRss?: () => number | undefined;
    diskProbe?: DiskProbe;
  } = {},
): Promise<TestGateway> {
  const dataDir = env.OUTPOST_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'outpost-test-'));
  const config = loadConfig({
    cwd: dataDir,
    env: {
      OUTPOST_DATA_DIR: dataDir,
      OUTPOST_GATEWAY_ID: 'gw-test',
      OUTPOST_HTTP_PORT: '0',
      OUTPOST_BROKER_PORT: '0',
      OUTPOST_LOG_LEVEL: process.env.OUTPOST_TEST_LOG ?? 'silent',
      OUTPOST_LOG_FORMAT: 'json',
      ...env,
    },
  });
  const daemon = await Daemon.start({
    config,
    logger: createLogger({ level: config.log.level, format: 'json' }),
    memoryProbe: options.memoryProbe,
    workerRss: options.workerRss,
    diskProbe: options.diskProbe,
  });
  if (options.waitConnected !== false) {
    await waitFor(
      'the gateway to reach its broker',
      () => (daemon.status().broker as { connected: boolean }).connected,
    );
  }
  let db: Database.Database | undefined;
  return {
    daemon,
    dataDir,
    mqttUrl: daemon.endpoints.mqtt,
    httpUrl: daemon.endpoints.http,
    sql<T>(query: string, ...params: unknown[]) {
      db ??= new Database(join(dataDir, 'outpost.db'), { readonly: true });
      return db.prepare(query).all(...params) as T[];
    },
    async stop() {
      db?.close();
      db = undefined;
      return daemon.stop();
    },
  };
}

export interface Collector {
  client: MqttClient;
  messages: { topic: string; payload: string; retain: boolean }[];
  on(topicPrefix: string): { topic: string; payload: string }[];
  json<T>(topicPrefix: string): T[];
  end(): Promise<void>;
}

/** A real MQTT client that records everything published under `filter`. */
export async function collect(url: string, filter: string): Promise<Collector> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 4, clean: true });
  const messages: Collector['messages'] = [];
  client.on('message', (topic, payload, packet) =>
    messages.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  await client.subscribeAsync(filter, { qos: 1 });
  const on = (prefix: string) => messages.filter((m) => m.topic.startsWith(prefix));
  return {
    client,
    messages,
    on,
    json: <T>(prefix: string) => on(prefix).map((m) => JSON.parse(m.payload) as T),
    end: () => client.endAsync(),
  };
}

/** A publisher: QoS 1 publishes that resolve on the broker's acknowledgement. */
export async function publisher(url: string): Promise<MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 4, clean: true });
}

/** Gaussian noise (mean 0, sd 1) from a seeded generator, for reproducible series. */
export function gaussian(seed: number): () => number {
  return normalSource(mulberry32(seed));
}
