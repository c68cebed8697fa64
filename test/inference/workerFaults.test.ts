/**
 * Model tier, worker faults: a real daemon, the real worker process and node-llama-cpp runtime with tiny
 * generated gemma3n models. The faults are real signals sent to the worker (SIGSTOP, SIGKILL); only the
 * kernel's OOM kill counter is injected (test (c)), because a real OOM kill cannot be caused here.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MemorySample } from '../../src/inference/index.js';
import type { ResultMessage } from '../../src/publish/index.js';
import {
  type Collector,
  collect,
  gaussian,
  publisher,
  startGateway,
  type TestGateway,
} from '../helpers/gateway.js';
import { modelEnv, writeTinyModels } from '../helpers/models.js';
import { waitFor } from '../helpers/wait.js';

const MB = 1024 * 1024;
let models: { small: string; large: string };

beforeAll(async () => {
  models = await writeTinyModels('outpost-fault-models-');
});

/** 25 normal readings of a device, then one far outside: one anomaly event, one explain job. */
async function raiseAnomaly(gateway: TestGateway, device: string) {
  const sensor = await publisher(gateway.mqttUrl);
  const noise = gaussian(device.length);
  const start = Date.now() - 26_000;
  for (let i = 0; i < 26; i++) {
    const value = i === 25 ? 500 : 20 + noise();
    await sensor.publishAsync(
      `sensors/${device}/temperature`,
      JSON.stringify({ value, unit: 'C', ts: start + i * 1000 }),
      { qos: 1 },
    );
  }
  await sensor.endAsync();
}

interface WorkerStatus {
  pid: number | null;
  alive: boolean;
  crashes: number;
  oomKills: number;
  timeouts: number;
  hungKills: number;
  lastExit: { signal: string | null; oomLikely: boolean; hung: boolean; expected: boolean } | null;
}

interface Status {
  model: {
    state: string;
    variant: string | null;
    worker: WorkerStatus;
    governor: { killed: { id: string; contextSize: number }[] };
  };
  jobs: {
    runner: {
      done: number;
      failed: number;
      retried: number;
      timedOut: number;
      workerExits: number;
      oomRequeued: number;
    };
  };
}

/** /api/status, as an operator reads it. */
const status = async (gateway: TestGateway) =>
  (await (await fetch(`${gateway.httpUrl}/api/status`)).json()) as Status;

type JobState = { state: string; attempts: number; reason: string | null };
const jobOf = (gateway: TestGateway, source: string) =>
  gateway.sql<JobState>('SELECT state, attempts, reason FROM jobs WHERE source = ?', source)[0];

/** Every distinct reason a device's job showed while it was being retried (they are overwritten). */
function watchReasons(gateway: TestGateway, source: string): { reasons: Set<string>; stop(): void } {
  const reasons = new Set<string>();
  const timer = setInterval(() => {
    const reason = jobOf(gateway, source)?.reason;
    if (reason) reasons.add(reason);
  }, 20);
  return { reasons, stop: () => clearInterval(timer) };
}

/** The worker's pid once a model is resident and the warm-up job is done. */
async function warmUp(gateway: TestGateway, observer: Collector): Promise<number> {
  await raiseAnomaly(gateway, 'warmup');
  await waitFor(
    'the warm-up result',
    () => observer.on('outpost/gw-test/results/anomaly/warmup').length,
    30_000,
  );
  const { pid } = (await status(gateway)).model.worker;
  expect(pid).toBeGreaterThan(0);
  return pid!;
}

/** Like waitFor, but looks every 2 ms (a job of a tiny model runs for a few hundred ms at most). */
async function pollFast(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const gone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

describe('inference worker faults (real worker, tiny models)', () => {
  let gateway: TestGateway | undefined;
  let observer: Collector | undefined;
  let watcher: { stop(): void } | undefined;

  afterEach(async () => {
    watcher?.stop();
    await observer?.end();
    if (gateway) expect(await gateway.stop()).toBe(0);
    gateway = undefined;
    observer = undefined;
    watcher = undefined;
  });

  it('a frozen worker (SIGSTOP) times out at its task limit, is killed and replaced, and the job is done once', async () => {
    gateway = await startGateway(
      modelEnv({ OUTPOST_MODEL: models.small, OUTPOST_INFERENCE_TASK_TIMEOUTS_EXPLAIN: '3' }),
    );
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    const frozen = await warmUp(gateway, observer);
    const reasons = watchReasons(gateway, 'pump-frozen');
    watcher = reasons;

    // Frozen, the worker takes the next job and never answers it, nor the abort that follows.
    process.kill(frozen, 'SIGSTOP');
    await raiseAnomaly(gateway, 'pump-frozen');
    await waitFor('the job running', () => jobOf(gateway!, 'pump-frozen')?.state === 'running', 10_000);
    const started = Date.now();

    // 3 s limit + 2 s abort grace, then a fresh worker loads the model and runs the job again.
    await waitFor('the retried job done', () => jobOf(gateway!, 'pump-frozen')?.state === 'done', 30_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(4_500);
    expect(gone(frozen)).toBe(true);
    expect(jobOf(gateway, 'pump-frozen')).toMatchObject({ state: 'done', attempts: 2 });
    expect([...reasons.reasons]).toContainEqual(
      expect.stringMatching(
        /^retrying after: the explain task did not finish within 3 s \(inference\.taskTimeouts\.explain\); the inference worker did not answer the abort and was killed$/,
      ),
    );

    await waitFor(
      'the result published',
      () => observer!.on('outpost/gw-test/results/anomaly/pump-frozen').length,
    );
    expect(observer.on('outpost/gw-test/results/anomaly/pump-frozen')).toHaveLength(1);
    expect(gateway.sql("SELECT count(*) AS n FROM results WHERE source = 'pump-frozen'")).toEqual([{ n: 1 }]);

    const after = await status(gateway);
    expect(after.model.worker).toMatchObject({
      alive: true,
      crashes: 0,
      timeouts: 1,
      hungKills: 1,
      oomKills: 0,
      lastExit: { signal: 'SIGKILL', hung: true, oomLikely: false, expected: false },
    });
    expect(after.model.worker.pid).not.toBe(frozen);
    expect(after.jobs.runner).toMatchObject({ done: 2, retried: 1, timedOut: 1, failed: 0, workerExits: 0 });
  }, 60_000);

  it('a job that kills the worker every time is failed after maxAttempts with the reason; the next job still runs', async () => {
    gateway = await startGateway(
      modelEnv({ OUTPOST_MODEL: models.small, OUTPOST_INFERENCE_MAX_ATTEMPTS: '2' }),
    );
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    await warmUp(gateway, observer);
    const reasons = watchReasons(gateway, 'poison');
    watcher = reasons;

    // Whenever the poison job runs, its worker is SIGKILLed (as a native crash on that input would).
    await raiseAnomaly(gateway, 'poison');
    const killed: number[] = [];
    for (let attempt = 1; attempt <= 2; attempt++) {
      // A tiny model answers in a few hundred ms: look often, so the kill lands inside the generation.
      await pollFast(`attempt ${attempt} running`, 20_000, () => {
        const job = jobOf(gateway!, 'poison');
        return job?.state === 'running' && job.attempts === attempt;
      });
      const pid = (gateway.daemon.status().model as { worker: { pid: number } }).worker.pid;
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    }
    await waitFor('the poison job failed', () => jobOf(gateway!, 'poison')?.state === 'failed', 20_000);
    expect(new Set(killed).size).toBe(2);
    expect(jobOf(gateway, 'poison')).toEqual({
      state: 'failed',
      attempts: 2,
      reason:
        'failed 2 times (the inference worker died during every attempt); last: the inference worker exited (signal SIGKILL)',
    });
    expect([...reasons.reasons]).toContain('retrying after: the inference worker exited (signal SIGKILL)');

    // Recovered: an ordinary job after it runs on a fresh worker.
    await raiseAnomaly(gateway, 'pump-after');
    await waitFor(
      'the next job done',
      () => observer!.on('outpost/gw-test/results/anomaly/pump-after').length,
      30_000,
    );
    expect(observer.on('outpost/gw-test/results/anomaly/poison')).toEqual([]);
    expect(gateway.sql("SELECT count(*) AS n FROM results WHERE source = 'poison'")).toEqual([{ n: 0 }]);
    const after = await status(gateway);
    expect(after.model.worker).toMatchObject({ alive: true, crashes: 2, timeouts: 0, hungKills: 0 });
    expect(killed).not.toContain(after.model.worker.pid);
    expect(after.jobs.runner).toMatchObject({ done: 2, failed: 1, retried: 1, workerExits: 2 });
  }, 60_000);

  it('after an OOM kill of the worker holding the larger variant, the governor steps down to the smaller one', async () => {
    // Injected: the kernel's OOM kill counter (what /proc/vmstat oom_kill would show). The test bumps it
    // and SIGKILLs the worker, which is exactly what the kernel's OOM killer does; memory is plentiful.
    let oomKills = 0;
    const sample = (): MemorySample => ({ memAvailable: 1024 * MB, total: 2048 * MB });
    gateway = await startGateway(
      modelEnv({ OUTPOST_MODEL: models.large, OUTPOST_MODEL_VARIANTS: JSON.stringify([models.small]) }),
      { memoryProbe: { sample, oomKills: () => oomKills }, workerRss: () => 0 },
    );
    observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
    const pid = await warmUp(gateway, observer);
    expect((await status(gateway)).model.variant).toBe('tiny-large.gguf');
    const reasons = watchReasons(gateway, 'pump-oom');
    watcher = reasons;

    // Mid-job: frozen so the job is surely running when the "OOM killer" strikes.
    process.kill(pid, 'SIGSTOP');
    await raiseAnomaly(gateway, 'pump-oom');
    await waitFor('the job running', () => jobOf(gateway!, 'pump-oom')?.state === 'running', 10_000);
    oomKills += 1;
    process.kill(pid, 'SIGKILL');

    await waitFor(
      'the retried job published',
      () => observer!.on('outpost/gw-test/results/anomaly/pump-oom').length,
      30_000,
    );
    const [result] = observer.json<ResultMessage>('outpost/gw-test/results/anomaly/pump-oom');
    expect(result!.variant).toBe('tiny-small.gguf');
    // Memory, not the job: the attempt is given back, the job waited for the smaller model.
    expect(jobOf(gateway, 'pump-oom')).toMatchObject({ state: 'done', attempts: 1 });
    expect([...reasons.reasons]).toContain(
      'waiting after an OOM kill: the inference worker exited (signal SIGKILL, likely killed by the kernel for memory)',
    );
    expect((await status(gateway)).jobs.runner).toMatchObject({ oomRequeued: 1 });
    const after = await status(gateway);
    expect(after.model.variant).toBe('tiny-small.gguf');
    expect(after.model.worker).toMatchObject({
      crashes: 1,
      oomKills: 1,
      lastExit: { signal: 'SIGKILL', oomLikely: true, hung: false },
    });
    expect(after.model.governor.killed).toEqual([
      expect.objectContaining({ id: 'tiny-large.gguf', contextSize: 256 }),
    ]);
  }, 60_000);
});
