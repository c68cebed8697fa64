import { basename, join, resolve } from 'node:path';
import type { Clock, Logger, Timer } from '../common/index.js';
import type { Config } from '../config/index.js';
import {
  audioTask,
  CATALOG,
  DEFAULT_TASKS,
  defaultThreads,
  GOVERNOR_MARGIN,
  InferenceEngine,
  JobRunner,
  type JobRunnerOptions,
  MemoryGovernor,
  type MemoryProbe,
  type ModelVariant,
  processRss,
  pullModel,
  type ResultSink,
  resolveModel,
  systemMemoryProbe,
  type TaskDefinition,
  type TaskName,
  WorkerSupervisor,
} from '../inference/index.js';
import type { Store } from '../store/index.js';

export interface InferenceParts {
  engine: InferenceEngine;
  runner: JobRunner;
  stop(): Promise<void>;
}

export interface StartInferenceOptions {
  /** Told of each finished job (metrics). */
  observe?: JobRunnerOptions['observe'];
  /**
   * Memory readings for the governor, and the kernel's OOM kill count for the worker supervisor (when the
   * probe has `oomKills`). Default: /proc and cgroup v2 (tests drive it).
   */
  memoryProbe?: MemoryProbe | undefined;
  /** RSS of the worker as the governor sees it. Default: read from /proc. */
  workerRss?: (() => number | undefined) | undefined;
  config: Config;
  store: Store;
  results: ResultSink;
  logger: Logger;
  clock: Clock;
}

/** The model files the governor may choose from, and what to tell an operator while none is there. */
function modelVariants(
  config: Config,
  logger: Logger,
): { variants: ModelVariant[]; hint: string; dir: string } {
  const dir = resolve(config.model.dir ?? join(config.dataDir, 'models'));
  const names = [
    ...new Set([config.model.name, ...(config.model.variants ?? [])].filter((n): n is string => !!n)),
  ];
  const mmproj = config.model.mmproj ? resolve(config.model.mmproj) : undefined;
  const variants: ModelVariant[] = [];
  // No model named: any Gemma 3n of the catalog that is (or later appears) in the model folder.
  const wanted = names.length > 0 ? names : CATALOG.filter((e) => e.family === 'gemma-3n').map((e) => e.name);
  for (const name of wanted) {
    const resolved = resolveModel(name, dir);
    if (resolved.kind === 'path') variants.push({ id: basename(resolved.path), path: resolved.path, mmproj });
    else if (resolved.kind === 'catalog')
      variants.push({ id: resolved.entry.name, path: resolved.path, mmproj });
    else
      logger.error({ model: name }, 'model is neither a GGUF path nor a catalog name (outpost model list)');
  }
  const first = names[0];
  const hint = first
    ? `no model file yet for ${first}: ${
        resolveModel(first, dir).kind === 'catalog'
          ? `run \`outpost model pull ${first}\` or copy its GGUF into ${dir}`
          : 'check the path'
      }`
    : `no model configured: set OUTPOST_MODEL to a GGUF path or a catalog name, or run \`outpost model pull gemma-3n-e2b-q4_k_m\` (into ${dir})`;
  return { variants, hint, dir };
}

/** The supervised worker, the memory governor, the engine and the job runner, wired from the config. */
export function startInference(options: StartInferenceOptions): InferenceParts {
  const { config, store, results, logger, clock } = options;
  const log = logger.child({ stage: 'inference' });
  const { variants, hint, dir } = modelVariants(config, log);
  const probe = options.memoryProbe ?? systemMemoryProbe();
  const supervisor = new WorkerSupervisor({
    logger: log,
    clock,
    ...(probe.oomKills && { oomKills: () => probe.oomKills?.() }),
  });
  const engine = new InferenceEngine({
    supervisor,
    variants,
    contextSizes: config.model.contextSizes,
    runtime: config.model.runtime,
    threads: config.model.threads ?? defaultThreads(),
    gpu: config.model.gpu === 'off' ? false : 'auto',
    missingHint: hint,
    logger: log,
    clock,
    governor: (offered) =>
      new MemoryGovernor({
        probe,
        clock,
        logger: log.child({ part: 'governor' }),
        variants: offered,
        workerRss:
          options.workerRss ??
          (() => (supervisor.pid === undefined ? undefined : processRss(supervisor.pid))),
        options: {
          margin: GOVERNOR_MARGIN,
          holdMs: config.model.upHold * 1000,
          pressureHighPercent: 20,
          killedCooldownMs: 30 * 60_000,
          capBytes: config.model.memoryCap,
          reserveBytes: config.model.reserve,
        },
      }),
  });
  const runner = new JobRunner({
    observe: options.observe,
    jobs: store.jobs,
    context: store.queries,
    engine,
    results,
    mediaPath: (path) => store.media.resolve(path),
    task: (name, route) => taskFor(config, name, route),
    maxTokens: config.model.maxTokens,
    jobTimeoutMs: config.inference.jobTimeout * 1000,
    taskTimeoutsMs: taskTimeoutsMs(config),
    maxAttempts: config.inference.maxAttempts,
    retryModelMs: config.inference.modelRetry * 1000,
    clock,
    logger: log,
  });
  runner.start();

  const timers: Timer[] = [];
  const digestMs = config.inference.digestInterval * 1000;
  if (digestMs > 0) {
    timers.push(
      clock.setInterval(() => {
        const to = clock.now();
        const devices = store.queries.activeDevices(to - digestMs, to);
        store.transaction(() => {
          // One digest per device waits at a time: with no model for days, they do not pile up.
          for (const device of devices.filter((d) => !store.jobs.hasOpen('digest', d)))
            store.jobs.add({ kind: 'digest', source: device, input: { from: to - digestMs, to } }, to);
        });
        if (devices.length > 0) runner.wake();
      }, digestMs),
    );
  }

  const pulling = new AbortController();
  const first = config.model.name;
  if (config.model.autoPull && first) {
    const resolved = resolveModel(first, dir);
    if (resolved.kind === 'catalog' && !resolved.present) {
      log.info({ model: first, dir }, 'model.autoPull: downloading');
      void pullModel(resolved.entry, { dir, signal: pulling.signal }).then(
        () => {
          log.info({ model: first }, 'model downloaded');
          runner.wake();
        },
        (error: Error) => log.error({ err: error.message }, 'model.autoPull failed; jobs keep waiting'),
      );
    }
  }

  return {
    engine,
    runner,
    async stop() {
      pulling.abort();
      for (const timer of timers) timer.cancel();
      await runner.stop();
      await engine.stop();
    },
  };
}

/** inference.taskTimeouts in ms, the tasks without their own limit left out (they take jobTimeout). */
function taskTimeoutsMs(config: Config): Partial<Record<TaskName, number>> {
  const limits: Partial<Record<TaskName, number>> = {};
  for (const [task, seconds] of Object.entries(config.inference.taskTimeouts) as [TaskName, number?][])
    if (seconds !== undefined) limits[task] = seconds * 1000;
  return limits;
}

/** A task with the route's prompt and schema overrides applied. */
function taskFor(config: Config, name: TaskName, route: string | null): TaskDefinition {
  const base = name === 'audio' ? audioTask(config.audio.language) : DEFAULT_TASKS[name];
  const override =
    name === 'ask' ? undefined : config.ingest.routes.find((r) => r.name === route)?.tasks?.[name];
  return { ...base, prompt: override?.prompt ?? base.prompt, schema: override?.schema ?? base.schema };
}
