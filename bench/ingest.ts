/**
 * npm run bench:ingest [-- --count 50000 --rounds 2]
 *
 * Sustained sensor messages/s from the first publish to the last committed row, and publish->commit
 * latency, for Outpost side by side with a bare mqtt.js subscriber on the same mosquitto in the same run,
 * alternating rounds.
 * Also Outpost on its embedded broker (there the publisher's PUBACK waits for the commit).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { freePort, startMosquitto } from '../test/helpers/mosquitto.js';

const { values: args } = parseArgs({
  options: { count: { type: 'string', default: '50000' }, rounds: { type: 'string', default: '2' } },
});
const count = Number(args.count);
const rounds = Number(args.rounds);
const tsx = new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const here = (file: string) => new URL(file, import.meta.url).pathname;

interface Row {
  name: string;
  rate: number;
  p50: number;
  p99: number;
  peakRssMb?: number;
  publisherRate: number;
}

function run(script: string, argv: string[], env: Record<string, string> = {}) {
  // Only TypeScript goes through tsx: the plain .mjs children and the built daemon carry no loader.
  const loader = script.endsWith('.ts') ? ['--import', tsx] : [];
  const child = spawn(process.execPath, [...loader, script, ...argv], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const done = new Promise<string>((resolve, reject) =>
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${script} exited ${code}: ${out}`)),
    ),
  );
  return { child, done, output: () => out };
}

const lastJson = <T>(text: string): T => JSON.parse(text.trim().split('\n').at(-1)!) as T;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(20);
  }
}

async function bare(url: string): Promise<Row> {
  const subscriber = run(here('./bareSubscriber.mjs'), [url, String(count)]);
  await until('bare subscriber ready', () => subscriber.output().includes('ready'));
  const publisher = run(here('./publisher.mjs'), [url, String(count)]);
  const [sub, pub] = await Promise.all([subscriber.done, publisher.done]);
  const s = lastJson<{ rate: number; p50: number; p99: number; peakRssMb: number }>(sub);
  return {
    name: 'bare mqtt.js subscriber',
    rate: s.rate,
    p50: s.p50,
    p99: s.p99,
    peakRssMb: s.peakRssMb,
    publisherRate: lastJson<{ rate: number }>(pub).rate,
  };
}

function peakRssMb(child: ChildProcess): number {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
}

let runs = 0;

async function outpost(name: string, brokerUrl: string | undefined): Promise<Row> {
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-bench-'));
  const httpPort = await freePort();
  const brokerPort = await freePort();
  const env: Record<string, string> = {
    OUTPOST_DATA_DIR: dataDir,
    OUTPOST_HTTP_PORT: String(httpPort),
    OUTPOST_BROKER_PORT: String(brokerPort),
    // A new id each run: a persistent session of an earlier run would otherwise collect this round's
    // bare-subscriber traffic on the broker and hand it to this run as a backlog.
    OUTPOST_GATEWAY_ID: `bench-${process.pid}-${++runs}`,
    OUTPOST_LOG_LEVEL: 'warn',
  };
  if (brokerUrl) env.OUTPOST_MQTT_URL = brokerUrl;
  // The built daemon (npm ci builds it) is what a gateway runs; the TypeScript source only as a fallback.
  const built = here('../dist/cli/main.js');
  const daemon = run(existsSync(built) ? built : here('../src/cli/main.ts'), ['start'], env);
  await until('gateway ready', async () => {
    try {
      return (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).ok;
    } catch {
      return false;
    }
  });
  const url = brokerUrl ?? `mqtt://127.0.0.1:${brokerPort}`;
  const publisher = run(here('./publisher.mjs'), [url, String(count)]);
  const db = new Database(join(dataDir, 'outpost.db'), { readonly: true });
  const readings = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM readings');
  await until('all readings stored', () => readings.get()!.n >= count);
  const pub = lastJson<{ rate: number }>(await publisher.done);
  // From the first publish to the last commit: the rate at which the whole stream got into the journal.
  const span = db
    .prepare<[], { n: number; first: number; last: number }>(
      `SELECT (SELECT count(*) FROM journal) AS n, (SELECT min(ts) FROM readings) AS first,
              (SELECT max(received_at) FROM journal) AS last`,
    )
    .get()!;
  const latencies = db
    .prepare<[], { ms: number }>(
      'SELECT j.received_at - r.ts AS ms FROM readings r JOIN journal j ON j.id = r.journal_id ORDER BY ms',
    )
    .all()
    .map((r) => r.ms);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))]!;
  const rss = peakRssMb(daemon.child);
  db.close();
  daemon.child.kill('SIGTERM');
  await daemon.done;
  rmSync(dataDir, { recursive: true, force: true });
  return {
    name,
    rate: (span.n / Math.max(1, span.last - span.first)) * 1000,
    p50: pct(50),
    p99: pct(99),
    peakRssMb: rss,
    publisherRate: pub.rate,
  };
}

const mosquitto = await startMosquitto();
const rows: Row[] = [];
try {
  process.stderr.write(
    `bench:ingest: ${count} QoS 1 messages a run, ${rounds} rounds, mosquitto with deploy/mosquitto/outpost.conf\n`,
  );
  for (let round = 1; round <= rounds; round++) {
    for (const job of [
      () => bare(mosquitto.url),
      () => outpost('outpost on mosquitto', mosquitto.url),
      () => outpost('outpost, embedded broker', undefined),
    ]) {
      const row = await job();
      rows.push(row);
      process.stderr.write(`  round ${round}: ${row.name}: ${row.rate.toFixed(0)} msg/s\n`);
    }
  }
} finally {
  await mosquitto.stop();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const summary = (name: string) => {
  const of = rows.filter((r) => r.name === name);
  return {
    name,
    rate: median(of.map((r) => r.rate)),
    p50: median(of.map((r) => r.p50)),
    p99: median(of.map((r) => r.p99)),
    peakRssMb: of[0]?.peakRssMb === undefined ? undefined : Math.max(...of.map((r) => r.peakRssMb ?? 0)),
    publisherRate: median(of.map((r) => r.publisherRate)),
  };
};
const base = summary('bare mqtt.js subscriber');
const lines = [
  `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}`,
  `messages per run: ${count}, rounds: ${rounds} (medians)`,
  '',
  '| consumer | msg/s to commit | p50 ms | p99 ms | peak RSS MB | publisher msg/s | ratio to bare |',
  '|---|---|---|---|---|---|---|',
];
for (const s of [base, summary('outpost on mosquitto'), summary('outpost, embedded broker')]) {
  lines.push(
    `| ${s.name} | ${s.rate.toFixed(0)} | ${s.p50} | ${s.p99} | ${s.peakRssMb?.toFixed(0) ?? '-'} | ${s.publisherRate.toFixed(0)} | ${(s.rate / base.rate).toFixed(2)} |`,
  );
}
process.stdout.write(`${lines.join('\n')}\n`);
