/**
 * npm run soak -- --minutes N [--model PATH] [--mmproj PATH|none] [--runner auto|tsx|dist]
 *                 [--sensors 20] [--cameras 2] [--audio 1] [--interval 5] [--out soak-report] [--keep]
 *
 * Runs the real daemon (`outpost start` as a child process: embedded broker and HTTP API on free loopback
 * ports, a temporary data folder, a tiny generated gemma3n with a generated vision+audio projector unless
 * --model) under moderate traffic from `outpost simulate` (sensors at 1 Hz each with occasional spikes,
 * cameras at one frame every 2 s, one microphone sending a 5 s clip every 15 s) plus a malformed message
 * every other interval, for N minutes (fractions allowed). Every interval it samples the daemon's and its
 * model worker's RSS (/proc), heap, event-loop delay, active handles, queue depths, job states, ingest and
 * reject rates, and the latency of a probe reading (publish -> served by /api/readings); results on MQTT
 * give the job latency. At the end (or on Ctrl-C) the daemon is stopped with SIGTERM and its exit code
 * checked; `<out>/<timestamp>/` gets report.html (inline SVG charts), samples.json and the daemon's log,
 * and stdout a summary table. Exit status: 0 when the daemon stopped with 0 and every probe was seen.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt, { type MqttClient } from 'mqtt';
import { writeTinyAudioProjector } from '../test/fixtures/gguf/audioProjector.js';
import { writeTinyGemma3n } from '../test/fixtures/gguf/gemma3n.js';
import {
  alive,
  at,
  baseEnv,
  type Child,
  fileMb,
  freePort,
  getJson,
  has,
  killAll,
  log,
  newestMtime,
  outpostEnv,
  ROOT,
  rssMb,
  sleep,
  spawnOutpost,
  sum,
  waitExit,
} from './soakProcesses.js';
import {
  reportHtml,
  type SoakProbe,
  type SoakResult,
  type SoakRun,
  type SoakSample,
  summaryRows,
  summaryTable,
} from './soakReport.js';

const GATEWAY = 'soak';
const READY_TIMEOUT_MS = 120_000;
const PROBE_TIMEOUT_MS = 60_000;
const DRAIN_TIMEOUT_MS = 30_000;
/** The daemon exits by itself 10 s into a stop that hangs; past this it is killed. */
const STOP_TIMEOUT_MS = 20_000;

const USAGE = `usage: npm run soak -- --minutes N [options]

  --minutes N         how long to drive traffic (> 0, fractions allowed, e.g. 0.5); default 10
  --model PATH        a GGUF model instead of the generated tiny gemma3n
  --mmproj PATH|none  projector for images/audio; default: a generated one sized to the model
  --runner R          auto (dist when it is newer than src, else tsx), tsx or dist; default auto
  --sensors N         sensor devices, 1 message/s each (3 metrics); default 20
  --cameras N         cameras, one 1280x720 frame every 2 s each; default 2
  --audio N           audio sources, a 5 s clip every 15 s each; default 1
  --interval S        seconds between samples (>= 1); default 5
  --out DIR           where <timestamp>/report.html goes; default soak-report
  --keep              keep the temporary data folder
`;

// ---------------------------------------------------------------------------------------------
// Arguments

interface SoakArgs {
  minutes: number;
  model: string | undefined;
  mmproj: string | undefined;
  runner: 'auto' | 'tsx' | 'dist';
  sensors: number;
  cameras: number;
  audio: number;
  interval: number;
  out: string;
  keep: boolean;
}

class UsageError extends Error {
  override readonly name = 'UsageError';
}

function parseCli(argv: string[]): SoakArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        minutes: { type: 'string', default: '10' },
        model: { type: 'string' },
        mmproj: { type: 'string' },
        runner: { type: 'string', default: 'auto' },
        sensors: { type: 'string', default: '20' },
        cameras: { type: 'string', default: '2' },
        audio: { type: 'string', default: '1' },
        interval: { type: 'string', default: '5' },
        out: { type: 'string', default: 'soak-report' },
        keep: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const number = (name: string, ok: (n: number) => boolean, what: string) => {
    const text = String(values[name]);
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || !ok(n)) {
      throw new UsageError(`--${name} must be ${what}, got '${text}'`);
    }
    return n;
  };
  const count = (name: string) =>
    number(name, (n) => Number.isInteger(n) && n >= 0 && n <= 1000, 'an integer from 0 to 1000');
  const runner = String(values.runner);
  if (runner !== 'auto' && runner !== 'tsx' && runner !== 'dist') {
    throw new UsageError(`--runner must be auto, tsx or dist, got '${runner}'`);
  }
  const file = (name: string) => {
    const value = values[name] as string | undefined;
    if (value === undefined || (name === 'mmproj' && value === 'none')) return value;
    const path = resolve(value);
    if (!existsSync(path) || !statSync(path).isFile()) throw new UsageError(`--${name}: no file at ${path}`);
    return path;
  };
  return {
    minutes: number(
      'minutes',
      (n) => n > 0 && n <= 7 * 24 * 60,
      'a number of minutes > 0 and at most a week (fractions allowed, e.g. 0.5)',
    ),
    model: file('model'),
    mmproj: file('mmproj'),
    runner,
    sensors: count('sensors'),
    cameras: count('cameras'),
    audio: count('audio'),
    interval: number('interval', (n) => n >= 1 && n <= 3600, 'a number of seconds from 1 to 3600'),
    out: resolve(String(values.out)),
    keep: values.keep === true,
  };
}

/** Which build runs the daemon: dist when asked, or (auto) when it exists and no source file is newer. */
function chooseRunner(wanted: SoakArgs['runner']): { runner: 'tsx' | 'dist'; why: string } {
  const dist = join(ROOT, 'dist/cli/main.js');
  if (wanted === 'tsx') return { runner: 'tsx', why: 'asked for' };
  if (!existsSync(dist)) {
    if (wanted === 'dist') throw new UsageError(`--runner dist: ${dist} is absent (npm run build)`);
    return { runner: 'tsx', why: 'no dist build' };
  }
  if (wanted === 'dist') return { runner: 'dist', why: 'asked for' };
  return newestMtime(join(ROOT, 'src')) > statSync(dist).mtimeMs
    ? { runner: 'tsx', why: 'dist is older than src' }
    : { runner: 'dist', why: 'dist is up to date' };
}

// ---------------------------------------------------------------------------------------------
// Model

async function prepareModel(
  args: SoakArgs,
  dir: string,
): Promise<{ model: string; mmproj: string | undefined; label: string }> {
  let model = args.model;
  let nEmbd: number | undefined;
  if (model === undefined) {
    const tiny = await writeTinyGemma3n(join(dir, 'tiny-gemma3n.gguf'), { size: 'small' });
    model = tiny.path;
    nEmbd = tiny.nEmbd;
  }
  const label = args.model === undefined ? 'generated tiny gemma3n' : relative(ROOT, model) || model;
  if (args.mmproj === 'none') return { model, mmproj: undefined, label };
  if (args.mmproj !== undefined) return { model, mmproj: args.mmproj, label };
  if (nEmbd === undefined) {
    // A projector's output width must equal the model's embedding width.
    const { readGgufFileInfo } = await import('node-llama-cpp');
    const info = await readGgufFileInfo(model, { readTensorInfo: false });
    const width = (info.architectureMetadata as { embedding_length?: unknown }).embedding_length;
    if (typeof width !== 'number') {
      log(`${model} names no embedding length: running without a projector (frames and clips will wait)`);
      return { model, mmproj: undefined, label };
    }
    nEmbd = width;
  }
  const projector = await writeTinyAudioProjector(join(dir, 'mmproj-vision-audio.gguf'), {
    projectionDim: nEmbd,
    withVision: true,
  });
  return { model, mmproj: projector.path, label };
}

// ---------------------------------------------------------------------------------------------
// The run

async function main(): Promise<number> {
  const args = parseCli(process.argv.slice(2));
  const stop = new AbortController();
  let stopReason: string | null = null;
  let lastSignalAt = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // npm and tsx pass a terminal's Ctrl-C on as well: one press can arrive twice within a moment.
    if (Date.now() - lastSignalAt < 1500) return;
    if (stop.signal.aborted) {
      log(`second ${signal}: killing the daemon and leaving without a report`);
      killAll();
      process.exit(130);
    }
    lastSignalAt = Date.now();
    stopReason = signal;
    log(`${signal}: stopping early; ${signal} again to abandon`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', killAll);

  const startedAt = new Date();
  const reportDir = join(args.out, startedAt.toISOString().replace(/[:.]/g, '-'));
  mkdirSync(reportDir, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-soak-'));
  const { runner, why } = chooseRunner(args.runner);
  const model = await prepareModel(args, dataDir);
  const [brokerPort, httpPort] = [await freePort(), await freePort()];
  const mqttUrl = `mqtt://127.0.0.1:${brokerPort}`;
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  log(`daemon from ${runner} (${why}); data in ${dataDir}; report in ${relative(process.cwd(), reportDir)}`);

  const env: NodeJS.ProcessEnv = {
    ...baseEnv(),
    OUTPOST_DATA_DIR: dataDir,
    OUTPOST_GATEWAY_ID: GATEWAY,
    OUTPOST_HTTP_PORT: String(httpPort),
    OUTPOST_BROKER_HOST: '127.0.0.1',
    OUTPOST_BROKER_PORT: String(brokerPort),
    OUTPOST_LOG_FORMAT: 'json',
    OUTPOST_LOG_LEVEL: 'info',
    OUTPOST_MODEL: model.model,
    // Room for the longest schema-valid answer of a random-weight model; one context size, no switching.
    OUTPOST_MODEL_CONTEXT_SIZES: '[2048]',
    OUTPOST_MODEL_MAX_TOKENS: '1500',
  };
  if (model.mmproj !== undefined) env.OUTPOST_MMPROJ = model.mmproj;
  const daemonLog = join(reportDir, 'daemon.log');
  const daemonFd = openSync(daemonLog, 'a');
  // The data folder is the working folder: an outpost.yaml lying in this checkout must not join in.
  const daemon = spawnOutpost('daemon', runner, ['start'], {
    cwd: dataDir,
    env,
    stdout: daemonFd,
    stderr: daemonFd,
  });

  const tail = () => readFileSync(daemonLog, 'utf8').trim().split('\n').slice(-15).join('\n');
  const readyBy = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (daemon.exit !== undefined) {
      log(`the daemon exited with ${daemon.exit} before it was ready; its log ends:\n${tail()}`);
      return 1;
    }
    if (stop.signal.aborted) return 130;
    if (Date.now() > readyBy) {
      log(`the daemon was not ready within ${READY_TIMEOUT_MS / 1000} s; its log ends:\n${tail()}`);
      return 1;
    }
    const ready = await getJson(`${httpUrl}/readyz`, 2000);
    if (ready.json !== undefined) break;
    await sleep(200);
  }
  const t0 = performance.now();
  const elapsed = () => (performance.now() - t0) / 1000;
  log(
    `daemon ${daemon.process.pid} ready at ${httpUrl}, broker ${mqttUrl}; driving traffic for ${args.minutes} min`,
  );

  // One client watches what the daemon publishes and sends the probes and the malformed messages.
  const results: SoakResult[] = [];
  let events = 0;
  let errorsPublished = 0;
  const client: MqttClient = await mqtt.connectAsync(mqttUrl, {
    protocolVersion: 4,
    clean: true,
    reconnectPeriod: 1000,
  });
  client.on('error', () => {});
  client.on('message', (topic, payload) => {
    if (topic.startsWith(`outpost/${GATEWAY}/results/`)) {
      try {
        const r = JSON.parse(payload.toString()) as { kind?: unknown; source?: unknown; latencyMs?: unknown };
        results.push({
          t: elapsed(),
          kind: String(r.kind),
          source: String(r.source),
          latencyMs: typeof r.latencyMs === 'number' ? r.latencyMs : null,
        });
      } catch {
        results.push({ t: elapsed(), kind: 'unparseable', source: topic, latencyMs: null });
      }
    } else if (topic.startsWith(`outpost/${GATEWAY}/events/`)) events++;
    else if (topic === `outpost/${GATEWAY}/errors`) errorsPublished++;
  });
  await client.subscribeAsync(
    [`outpost/${GATEWAY}/results/#`, `outpost/${GATEWAY}/events/#`, `outpost/${GATEWAY}/errors`],
    { qos: 1 },
  );

  // The traffic: `outpost simulate` in a process of its own, so rendering frames and clips does not
  // disturb this script's timing of the probes.
  const traffic =
    `${args.sensors} sensors x 1 Hz (3 metrics), ${args.cameras} cameras x 0.5 fps 1280x720, ` +
    `${args.audio} audio x 5 s clip / 15 s, 1 malformed message / ${2 * args.interval} s`;
  let simulator: Child | undefined;
  let simulatorOut = '';
  if (args.sensors + args.cameras + args.audio > 0) {
    const simLog = openSync(join(reportDir, 'simulate.log'), 'a');
    simulator = spawnOutpost(
      'simulate',
      runner,
      [
        'simulate',
        ...['--url', mqttUrl, '--devices', String(args.sensors), '--rate', String(Math.max(1, args.sensors))],
        ...['--shape', 'object', '--anomaly-rate', '0.001'],
        ...['--cameras', String(args.cameras), '--fps', '0.5'],
        ...['--audio', String(args.audio), '--clip-seconds', '5', '--clip-interval', '15'],
      ],
      { cwd: dataDir, env: baseEnv(), stdout: 'pipe', stderr: simLog },
    );
    simulator.process.stdout?.on('data', (chunk: Buffer) => {
      simulatorOut += chunk.toString();
    });
  }

  const samples: SoakSample[] = [];
  const probes: SoakProbe[] = [];
  let probeInFlight = false;
  let badSent = 0;
  let stoppedEarly: string | null = null;
  const missing = new Set<string>();
  const workerPids = new Set<number>();
  let previous: { t: number; accepted: number | null; rejected: number | null } | undefined;

  const sample = async (): Promise<SoakSample> => {
    const t = elapsed();
    const status = await getJson(`${httpUrl}/api/status`);
    const s = status.json;
    if (s !== undefined) {
      for (const path of [
        ['process', 'pid'],
        ['process', 'eventLoopDelayMs', 'p99'],
        ['process', 'resources'],
        ['model', 'worker', 'pid'],
        ['queues', 'journalPending'],
        ['queues', 'outbox', 'messages'],
        ['memory', 'heapUsedBytes'],
      ]) {
        if (!has(s, ...path)) missing.add(path.join('.'));
      }
    }
    const daemonPid = at(s, 'process', 'pid') ?? daemon.process.pid ?? null;
    const workerPid = at(s, 'model', 'worker', 'pid');
    if (workerPid !== null) workerPids.add(workerPid);
    const jobs = (state: string) => at(s, 'jobs', state);
    const accepted = sum(s?.ingest !== undefined ? (s.ingest as Record<string, unknown>).accepted : null);
    const rejected = s === undefined ? null : (sum(s.rejects) ?? 0);
    const rate = (now: number | null, before: number | null | undefined) =>
      now === null || before === null || before === undefined || previous === undefined
        ? null
        : (now - before) / Math.max(1e-3, t - previous.t);
    const resources =
      s !== undefined && has(s, 'process', 'resources')
        ? ((s.process as Record<string, unknown>).resources as Record<string, number>)
        : null;
    const waitingModel = jobs('waiting-model');
    const waitingCapability = jobs('waiting-capability');
    const record: SoakSample = {
      t,
      at: new Date().toISOString(),
      daemonRssMb: rssMb(daemonPid) ?? (at(s, 'memory', 'rssBytes') ?? Number.NaN) / 1048576,
      workerRssMb: rssMb(workerPid),
      workerPid,
      heapUsedMb: s === undefined ? null : (at(s, 'memory', 'heapUsedBytes') ?? Number.NaN) / 1048576,
      loopP50Ms: at(s, 'process', 'eventLoopDelayMs', 'p50'),
      loopP99Ms: at(s, 'process', 'eventLoopDelayMs', 'p99'),
      loopMaxMs: at(s, 'process', 'eventLoopDelayMs', 'max'),
      handles: resources === null ? null : sum(resources),
      resources,
      journalPending: at(s, 'queues', 'journalPending'),
      outboxMessages: at(s, 'queues', 'outbox', 'messages'),
      jobsQueued: jobs('queued'),
      jobsRunning: jobs('running'),
      jobsWaiting:
        waitingModel === null && waitingCapability === null
          ? null
          : (waitingModel ?? 0) + (waitingCapability ?? 0),
      jobsDone: jobs('done'),
      jobsFailed: jobs('failed'),
      jobsDropped: jobs('dropped'),
      accepted,
      rejected,
      ingestRate: rate(accepted, previous?.accepted),
      rejectRate: rate(rejected, previous?.rejected),
      dbMb: fileMb(join(dataDir, 'outpost.db'), join(dataDir, 'outpost.db-wal')),
      mediaMb: s === undefined ? null : (at(s, 'media', 'bytes') ?? Number.NaN) / 1048576,
      results: results.length,
      statusMs: s === undefined ? null : status.ms,
    };
    // NaN stands for "status answered without this field": keep the sample's columns numeric or null.
    for (const key of ['daemonRssMb', 'heapUsedMb', 'mediaMb'] as const) {
      if (Number.isNaN(record[key])) record[key] = null;
    }
    if (status.error !== undefined) record.error = status.error;
    if (s !== undefined) previous = { t, accepted, rejected };
    return record;
  };

  const probe = async (seq: number) => {
    probeInFlight = true;
    const ts = Date.now();
    const value = 100 + seq;
    const record: SoakProbe = { seq, t: elapsed(), value, ackMs: null, storedMs: null };
    probes.push(record);
    const started = performance.now();
    try {
      await client.publishAsync('sensors/soakprobe/value', JSON.stringify({ value, ts }), { qos: 1 });
      record.ackMs = performance.now() - started;
      const query = `${httpUrl}/api/readings?series=soakprobe/value&from=${ts}&to=${ts + 1}&bucket=1s`;
      // Polls fast at first and backs off, so a slow daemon is not also flooded (the API rate-limits).
      for (let delay = 10; performance.now() - started < PROBE_TIMEOUT_MS; delay = Math.min(delay * 2, 250)) {
        const answer = await getJson(query);
        const points = (answer.json?.points ?? []) as { count: number; max: number }[];
        if (points.some((p) => p.count > 0 && p.max === value)) {
          record.storedMs = performance.now() - started;
          return;
        }
        if (answer.error !== undefined) record.error = answer.error;
        await sleep(delay);
      }
      record.error ??= `not served within ${PROBE_TIMEOUT_MS / 1000} s`;
    } catch (error) {
      record.error = (error as Error).message;
    } finally {
      probeInFlight = false;
    }
  };

  const plannedSeconds = args.minutes * 60;
  let tick = 0;
  let lastLine = 0;
  for (;;) {
    if (daemon.exit !== undefined) {
      stoppedEarly = `the daemon exited with ${daemon.exit}`;
      log(stoppedEarly);
      break;
    }
    const record = await sample();
    samples.push(record);
    if (!probeInFlight) void probe(tick);
    if (tick % 2 === 1) {
      // Malformed input: rejected with a reason and counted, never stopping the rest.
      client.publishAsync('sensors/soakbad/temperature', 'hot', { qos: 1 }).then(
        () => badSent++,
        () => {},
      );
    }
    if (Date.now() - lastLine >= 30_000) {
      lastLine = Date.now();
      log(
        `${record.t.toFixed(0)} s: daemon ${record.daemonRssMb?.toFixed(0) ?? '?'} MB, worker ${record.workerRssMb?.toFixed(0) ?? '-'} MB, ` +
          `${record.ingestRate?.toFixed(1) ?? '?'} msg/s, ${results.length} results, loop p99 ${record.loopP99Ms ?? '?'} ms`,
      );
    }
    if (simulator?.exit !== undefined && stoppedEarly === null) {
      stoppedEarly = `the simulator exited with ${simulator.exit}`;
      log(`${stoppedEarly}; see simulate.log (sampling goes on)`);
    }
    tick++;
    // The last interval may be short: the run ends with a sample at the planned end.
    if (stop.signal.aborted || record.t >= plannedSeconds - 0.05) break;
    const next = Math.min(tick * args.interval, plannedSeconds);
    await sleep(Math.max(0, (next - elapsed()) * 1000), stop.signal);
    if (stop.signal.aborted) break;
  }
  if (stopReason !== null) stoppedEarly ??= stopReason;
  const actualSeconds = elapsed();

  // Traffic off, then wait (bounded) for the queues to empty before stopping the daemon.
  let simulatorExit = simulator === undefined ? 'not run (no sensors, cameras or audio)' : 'running';
  if (simulator !== undefined) {
    if (simulator.exit === undefined && simulator.process.pid !== undefined)
      process.kill(simulator.process.pid, 'SIGINT');
    const code = await waitExit(simulator, 15_000);
    if (code === undefined) process.kill(-simulator.process.pid!, 'SIGKILL');
    simulatorExit = code === undefined ? 'killed (no exit 15 s after SIGINT)' : `exited ${code}`;
  }
  const simulatorSummary = (() => {
    const line = simulatorOut.trim().split('\n').at(-1);
    try {
      return line ? (JSON.parse(line) as Record<string, unknown>) : null;
    } catch {
      return null;
    }
  })();
  while (probeInFlight) await sleep(50);

  let drainedMs: number | null = null;
  let final: SoakSample | null = null;
  const drainStarted = performance.now();
  while (daemon.exit === undefined && performance.now() - drainStarted < DRAIN_TIMEOUT_MS) {
    final = await sample();
    if (
      final.journalPending === 0 &&
      final.outboxMessages === 0 &&
      final.jobsQueued === 0 &&
      final.jobsRunning === 0
    ) {
      drainedMs = performance.now() - drainStarted;
      break;
    }
    await sleep(1000);
  }
  if (final !== null) samples.push(final);
  await client.endAsync(true).catch(() => {});

  let exitCode: number | string | null = daemon.exit ?? null;
  let stopMs: number | null = null;
  const lastWorker = [...workerPids].at(-1);
  if (daemon.exit === undefined) {
    log('stopping the daemon (SIGTERM)');
    const stopStarted = performance.now();
    process.kill(daemon.process.pid!, 'SIGTERM');
    const code = await waitExit(daemon, STOP_TIMEOUT_MS);
    stopMs = performance.now() - stopStarted;
    if (code === undefined) {
      process.kill(-daemon.process.pid!, 'SIGKILL');
      exitCode = `none: killed ${STOP_TIMEOUT_MS / 1000} s after SIGTERM`;
    } else exitCode = code;
  }
  // The worker belongs to the daemon: once the daemon is gone, so must it be.
  await sleep(300);
  const workerLeftRunning = lastWorker === undefined ? null : alive(lastWorker);
  if (workerLeftRunning) process.kill(lastWorker!, 'SIGKILL');

  const run: SoakRun = {
    startedAt: startedAt.toISOString(),
    plannedSeconds,
    actualSeconds,
    stoppedEarly,
    runner: `${runner} (${why})`,
    model: model.label,
    projector:
      model.mmproj === undefined
        ? null
        : args.mmproj === undefined
          ? 'generated vision+audio projector'
          : relative(ROOT, model.mmproj),
    traffic,
    samples,
    probes,
    results,
    events,
    errorsPublished,
    sent: {
      simulated: typeof simulatorSummary?.sent === 'number' ? simulatorSummary.sent : null,
      probes: probes.filter((p) => p.ackMs !== null).length,
      bad: badSent,
    },
    simulator: simulatorSummary,
    simulatorExit,
    final,
    drainedMs,
    exitCode,
    stopMs,
    workerLeftRunning,
    missingStatus: [...missing],
  };
  writeFileSync(
    join(reportDir, 'samples.json'),
    `${JSON.stringify({ args, env: outpostEnv(env), ...run }, null, 2)}\n`,
  );
  writeFileSync(join(reportDir, 'report.html'), reportHtml(run));
  process.stdout.write(`\n${summaryTable(summaryRows(run))}\n\nreport: ${join(reportDir, 'report.html')}\n`);

  if (args.keep) log(`data kept in ${dataDir}`);
  else rmSync(dataDir, { recursive: true, force: true });
  const lost = probes.filter((p) => p.storedMs === null).length;
  return exitCode === 0 && lost === 0 && !workerLeftRunning ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`soak: ${error.message}\n\n${USAGE}`);
      process.exit(2);
    }
    process.stderr.write(`soak: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
