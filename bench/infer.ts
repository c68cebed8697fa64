/**
 * npm run bench:infer
 *
 * For each model (../shared/models/stories260K.gguf, a real tiny model that writes English, when present;
 * always the suite's generated tiny gemma3n): the per-job time through the daemon (job start to stored
 * result: prompt, IPC to the worker, generation, validation, commit) against the runtime's own generation
 * time for the same job's prompt and tokens, as the worker measured it; tokens/s through the daemon and
 * with node-llama-cpp called directly in this process; and the time to switch the worker between two
 * model files.
 */
import { existsSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createLogger, systemClock } from '../src/common/index.js';
import { defaultThreads } from '../src/inference/cpu.js';
import { DEFAULT_TASKS, renderPrompt, WorkerSupervisor } from '../src/inference/index.js';
import { NodeLlamaCppRuntime } from '../src/inference/runtimes/nodeLlamaCpp.js';
import type { ResultMessage } from '../src/publish/index.js';
import { writeTinyGemma3n } from '../test/fixtures/gguf/gemma3n.js';
import { collect, gaussian, publisher, startGateway } from '../test/helpers/gateway.js';
import { waitFor } from '../test/helpers/wait.js';

const JOBS = 8;
const CONTEXT = 1024;
const threads = defaultThreads();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const dir = mkdtempSync(join(tmpdir(), 'outpost-bench-infer-'));
const models: { name: string; path: string }[] = [];
const stories = new URL('../../shared/models/stories260K.gguf', import.meta.url).pathname;
if (existsSync(stories)) models.push({ name: 'stories260K (real, llama)', path: stories });
else process.stderr.write(`bench:infer: ${stories} is absent; measuring the generated model only\n`);
const small = (await writeTinyGemma3n(join(dir, 'tiny-small.gguf'), { size: 'small' })).path;
const large = (await writeTinyGemma3n(join(dir, 'tiny-large.gguf'), { size: 'large' })).path;
models.push({ name: 'tiny gemma3n (generated, random weights)', path: small });

/** Jobs through a real daemon: one anomaly per device, each explained by the model. */
async function throughDaemon(path: string) {
  const gateway = await startGateway({
    OUTPOST_MODEL: path,
    OUTPOST_MODEL_CONTEXT_SIZES: `[${CONTEXT}]`,
    OUTPOST_MODEL_THREADS: String(threads),
    OUTPOST_MODEL_MAX_TOKENS: '400',
    OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
    OUTPOST_SENSORS_ANOMALY_COOLDOWN: '0.001',
  });
  const observer = await collect(gateway.mqttUrl, 'outpost/gw-test/results/#');
  const sensor = await publisher(gateway.mqttUrl);
  for (let job = 0; job <= JOBS; job++) {
    const noise = gaussian(job + 1);
    const start = Date.now() - 60_000;
    for (let i = 0; i < 26; i++) {
      const value = i === 25 ? 400 : 20 + noise();
      await sensor.publishAsync(
        `sensors/bench${job}/temperature`,
        JSON.stringify({ value, unit: 'C', ts: start + i * 1000 }),
        {
          qos: 1,
        },
      );
    }
    // one job at a time, so no job waits behind another
    await waitFor(`job ${job}`, () => observer.messages.length === job + 1, 20_000);
  }
  await sensor.endAsync();
  const results = observer.json<ResultMessage>('outpost/gw-test/results/').slice(1); // the first also loads the model
  await observer.end();
  await gateway.stop();
  return results;
}

/** The same kind of prompt straight through node-llama-cpp in this process. */
async function direct(path: string, prompt: string) {
  const runtime = new NodeLlamaCppRuntime();
  await runtime.load({
    runtime: 'node-llama-cpp',
    modelPath: path,
    contextSize: CONTEXT,
    threads,
    gpu: false,
  });
  const runs = [];
  for (let i = 0; i < JOBS; i++) {
    runs.push(await runtime.generate({ prompt, schema: DEFAULT_TASKS.explain.schema, maxTokens: 400 }));
  }
  await runtime.unload();
  return runs;
}

const rows: string[] = [];
for (const model of models) {
  const results = await throughDaemon(model.path);
  const ratio = median(results.map((r) => r.latencyMs / r.generation.ms));
  const daemonTps = median(results.map((r) => (r.generation.tokens / r.latencyMs) * 1000));
  const prompt = renderPrompt(DEFAULT_TASKS.explain, {
    device: 'bench1',
    metric: 'temperature',
    value: 400,
    unit: 'C',
    recentValues: Array.from({ length: 25 }, (_, i) => 20 + (i % 3) / 10),
  });
  const runs = await direct(model.path, prompt);
  const directTps = median(runs.map((r) => (r.tokens / r.generationMs) * 1000));
  const directPrompt = median(runs.map((r) => r.promptTokens));
  const daemonPrompt = median(results.map((r) => r.generation.promptTokens));
  rows.push(
    `| ${model.name} | ${median(results.map((r) => r.latencyMs))} | ${median(results.map((r) => r.generation.ms)).toFixed(1)} | ${ratio.toFixed(3)} | ${median(results.map((r) => r.generation.tokens))} | ${daemonPrompt} / ${directPrompt} | ${daemonTps.toFixed(0)} | ${directTps.toFixed(0)} |`,
  );
}

// Switching: the worker unloads one file and loads the other (what the governor does between jobs).
const supervisor = new WorkerSupervisor({
  logger: createLogger({ level: 'warn', format: 'json' }),
  clock: systemClock,
});
const switches: number[] = [];
for (let i = 0; i < 6; i++) {
  const started = performance.now();
  await supervisor.request({ type: 'unload' }).catch(() => {});
  await supervisor.request({
    type: 'load',
    options: {
      runtime: 'node-llama-cpp',
      modelPath: i % 2 ? small : large,
      contextSize: CONTEXT,
      threads,
      gpu: false,
    },
  });
  if (i > 0) switches.push(performance.now() - started);
}
await supervisor.stop();

process.stdout.write(
  [
    `machine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}; threads ${threads}, context ${CONTEXT}, ${JOBS} jobs a model (medians)`,
    '',
    '| model | job ms (daemon) | generation ms (runtime, same job) | ratio | tokens | prompt tokens daemon / direct | tokens/s daemon | tokens/s direct |',
    '|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
    `switch between the two generated gemma3n files (unload + load in the worker): ${median(switches).toFixed(0)} ms`,
    '',
  ].join('\n'),
);
