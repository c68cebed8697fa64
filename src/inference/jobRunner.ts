import { existsSync } from 'node:fs';
import { Ajv, type ValidateFunction } from 'ajv';
import type { Clock, Logger, Timer } from '../common/index.js';
import type { DeviceSeriesSummary, EventRow, JobRow, JobTable } from '../store/index.js';
import type { Generation, InferenceEngine } from './engine.js';
import { TaskTimeoutError } from './errors.js';
import type { JsonSchema, MediaInput } from './runtime.js';
import { askSchema, renderPrompt, type TaskDefinition, type TaskName, validationSchema } from './tasks.js';
import { WorkerCrashedError, WorkerTimeoutError } from './worker/errors.js';

/** The stored data a job's prompt is built from. */
export interface JobContextSource {
  event(id: number): EventRow | undefined;
  recentReadings(
    device: string,
    metric: string,
    until: number,
    limit: number,
  ): { ts: number; value: number }[];
  deviceSummary(device: string, from: number, to: number): DeviceSeriesSummary[];
  eventCount(source: string, from: number, to: number): number;
}

/** A finished job's result, to store and publish once. */
export interface JobResult {
  job: JobRow;
  resultKind: string;
  /** epoch ms of what the result is about */
  ts: number;
  generation: Generation;
  output: Record<string, unknown>;
  latencyMs: number;
}

/** Stores a result, marks its job done and queues its message, in one transaction. */
export interface ResultSink {
  recordResult(result: JobResult): void;
  /** a job ended without a result (failed): what it kept (media files) can go */
  discardJobMedia(job: JobRow): void;
}

export interface JobRunnerOptions {
  jobs: JobTable;
  context: JobContextSource;
  engine: InferenceEngine;
  results: ResultSink;
  /** absolute path of a job's media file (stored relative to the media folder) */
  mediaPath: (path: string) => string;
  /** The task of a job, with its route's prompt/schema overrides applied. */
  task: (name: TaskName, route: string | null) => TaskDefinition;
  maxTokens: number;
  /** Longest a job's generation may take, ms, unless its task has its own limit. */
  jobTimeoutMs: number;
  /**
   * Per task (job kind), the longest its generation may take, ms; a task absent here takes jobTimeoutMs.
   * A frame or a clip costs far more than a sentence about a sensor. Default: none.
   */
  taskTimeoutsMs?: Readonly<Partial<Record<TaskName, number>>>;
  /** a job failing (or killing the worker) this many times is failed */
  maxAttempts: number;
  /** how often to look again for a model while none is resident, ms. Default 10000. */
  retryModelMs?: number;
  /** told of each finished job (metrics) */
  observe?: (job: { kind: string; seconds: number; tokens: number; generationMs: number }) => void;
  clock: Clock;
  logger: Logger;
}

export interface JobRunnerStats {
  done: number;
  failed: number;
  retried: number;
  /** attempts whose generation outlived its task's time limit */
  timedOut: number;
  /** attempts ended by the inference worker exiting (crash, outside kill, OOM killer) */
  workerExits: number;
  /** jobs queued again, their attempt given back, because the worker was killed for memory */
  oomRequeued: number;
  /** the job running now */
  running: string | null;
}

/**
 * Runs queued jobs one at a time through the resident model: the governor decides between jobs, a job
 * that finds no model waits in `waiting-model` (visible in status and the API), a job whose media the
 * resident model cannot take waits in `waiting-capability` until one that can is resident, a crashed or
 * timed-out generation (each task has its own time limit) is retried, a job failing `maxAttempts` times
 * is failed with its reason (which says when the worker died running it).
 */
export class JobRunner {
  readonly #o: JobRunnerOptions;
  readonly #validators = new Map<string, ValidateFunction>();
  readonly #ajv = new Ajv({ allErrors: true, strict: false });
  readonly #stats: JobRunnerStats = {
    done: 0,
    failed: 0,
    retried: 0,
    oomRequeued: 0,
    timedOut: 0,
    workerExits: 0,
    running: null,
  };
  /** per job still open: how many of its attempts ended with the worker's exit (for the failure reason) */
  readonly #workerExits = new Map<string, number>();
  #wake: (() => void) | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #current: AbortController | undefined;

  constructor(options: JobRunnerOptions) {
    this.#o = options;
  }

  start(): void {
    const resumed = this.#o.jobs.resumeRunning(this.#o.clock.now());
    if (resumed > 0) this.#o.logger.info({ resumed }, 'jobs left running by the last run are queued again');
    this.#loop ??= this.#run();
  }

  /** A job was queued. */
  wake(): void {
    this.#wake?.();
  }

  /** Stops after aborting the running generation (it is queued again for the next start). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#current?.abort(new Error('the gateway is stopping'));
    this.wake();
    await this.#loop;
  }

  stats(): JobRunnerStats {
    return { ...this.#stats };
  }

  async #run() {
    const { jobs, engine, clock, logger } = this.#o;
    while (!this.#stopped) {
      const job = jobs.next();
      if (!job) {
        // Jobs waiting for a capability: look again now and then (a projector copied in, a variant switch).
        const waiting = jobs.kindsWaitingCapability();
        if (waiting.length > 0 && (await this.#prepare()) && this.#wakeCapable(waiting) > 0) continue;
        await this.#sleep(waiting.length > 0 ? (this.#o.retryModelMs ?? 10_000) : undefined);
        continue;
      }
      const ready = await this.#prepare();
      if (!ready) {
        const parked = jobs.parkAll(engine.reason || 'no model resident', clock.now());
        if (parked > 0) logger.info({ jobs: parked, reason: engine.reason }, 'jobs wait for a model');
        await this.#sleep(this.#o.retryModelMs ?? 10_000);
        if (!this.#stopped) jobs.wakeWaiting(clock.now());
        continue;
      }
      this.#wakeCapable(jobs.kindsWaitingCapability());
      // Readying the model takes seconds: a newer frame may have superseded this job meanwhile.
      if (!jobs.isOpen(job.id)) continue;
      const task = this.#o.task(job.kind as TaskName, job.route);
      const missing = task.media && !engine.capabilities[task.media];
      if (missing) {
        jobs.set(job.id, 'waiting-capability', this.#capabilityReason(task.media!), clock.now());
        logger.info(
          { job: job.id, kind: job.kind, reason: engine.projectorError },
          'job waits for a capability',
        );
        continue;
      }
      await this.#runJob(job, task);
    }
  }

  async #prepare(): Promise<boolean> {
    try {
      return await this.#o.engine.prepare();
    } catch (error) {
      this.#o.logger.error({ err: error }, 'preparing the model failed');
      return false;
    }
  }

  /** Queues the waiting jobs of the kinds the resident model can now run; returns how many. */
  #wakeCapable(kinds: readonly string[]): number {
    const { jobs, engine, clock, logger } = this.#o;
    let woken = 0;
    for (const kind of kinds) {
      const media = this.#o.task(kind as TaskName, null).media;
      if (media && !engine.capabilities[media]) continue;
      const n = jobs.wakeKind(kind, clock.now());
      if (n > 0) logger.info({ kind, jobs: n }, 'the resident model can run waiting jobs');
      woken += n;
    }
    return woken;
  }

  #capabilityReason(media: 'image' | 'audio'): string {
    const why = this.#o.engine.projectorError;
    return `the resident model takes no ${media === 'image' ? 'images' : 'audio'}: ${
      why ?? 'configure a projector for it (model.mmproj, OUTPOST_MMPROJ)'
    }`;
  }

  async #runJob(job: JobRow, task: TaskDefinition) {
    const { jobs, engine, clock, logger, results } = this.#o;
    const started = clock.monotonic();
    if (!jobs.start(job.id, clock.now())) {
      logger.debug({ job: job.id, kind: job.kind }, 'job superseded or dropped while the model was readied');
      return;
    }
    this.#stats.running = job.id;
    const controller = new AbortController();
    this.#current = controller;
    try {
      const { input, ts, prompt, media, schema } = this.#input(job);
      const asked = { ...task, ...(prompt && { prompt }), ...(schema && { schema }) };
      const generation = await engine.generate(
        {
          prompt: renderPrompt(asked, input),
          schema: asked.schema,
          maxTokens: this.#o.maxTokens,
          media,
        },
        { signal: controller.signal, timeoutMs: this.#timeoutFor(job.kind).ms },
      );
      if (generation.result.stopReason === 'maxTokens') {
        throw new Error(
          `the answer was cut at model.maxTokens (${this.#o.maxTokens} tokens): raise it, or bound the schema's strings`,
        );
      }
      const output = this.#validate(asked, generation.result.text);
      results.recordResult({
        job,
        resultKind: task.resultKind,
        ts,
        generation,
        output,
        latencyMs: clock.monotonic() - started,
      });
      this.#stats.done += 1;
      this.#workerExits.delete(job.id);
      this.#o.observe?.({
        kind: job.kind,
        seconds: (clock.monotonic() - started) / 1000,
        tokens: generation.result.tokens,
        generationMs: generation.result.generationMs,
      });
      logger.info(
        {
          job: job.id,
          kind: job.kind,
          source: job.source,
          tokens: generation.result.tokens,
          ms: Math.round(clock.monotonic() - started),
        },
        'job done',
      );
    } catch (caught) {
      const error = this.#explain(job, caught);
      const reason = error.message;
      const attempts = job.attempts + 1;
      if (this.#stopped) {
        jobs.set(job.id, 'queued', 'interrupted by a stop', clock.now());
      } else if (caught instanceof WorkerCrashedError && caught.oomLikely) {
        // Memory, not the job: the governor steps down and the job waits for the smaller model without
        // spending an attempt (DESIGN: jobs wait, they are not dropped).
        jobs.requeueWithoutAttempt(job.id, `waiting after an OOM kill: ${reason}`, clock.now());
        this.#stats.oomRequeued += 1;
        logger.warn(
          { job: job.id, kind: job.kind, reason },
          'worker killed for memory; job waits for a smaller model',
        );
      } else if (attempts >= this.#o.maxAttempts) {
        const exits = this.#workerExits.get(job.id) ?? 0;
        this.#workerExits.delete(job.id);
        // A job that keeps taking the worker down says so: it is the job, not the model, that is bad.
        const died =
          exits === 0
            ? ''
            : exits === attempts
              ? ' (the inference worker died during every attempt)'
              : ` (the inference worker died during ${exits} of them)`;
        jobs.set(job.id, 'failed', `failed ${attempts} times${died}; last: ${reason}`, clock.now());
        results.discardJobMedia(job);
        this.#stats.failed += 1;
        logger.error({ job: job.id, kind: job.kind, reason }, 'job failed');
      } else {
        jobs.set(job.id, 'queued', `retrying after: ${reason}`, clock.now());
        this.#stats.retried += 1;
        logger.warn({ job: job.id, kind: job.kind, reason }, 'job will be retried');
      }
    } finally {
      this.#current = undefined;
      this.#stats.running = null;
    }
  }

  /** The task's time limit, and the setting that gave it (named in a timeout's reason). */
  #timeoutFor(kind: string): { ms: number; setting: string } {
    const own = this.#o.taskTimeoutsMs?.[kind as TaskName];
    return own === undefined
      ? { ms: this.#o.jobTimeoutMs, setting: 'inference.jobTimeout' }
      : { ms: own, setting: `inference.taskTimeouts.${kind}` };
  }

  /** Counts a timeout or a worker exit, and words a timeout after the job's task and its setting. */
  #explain(job: JobRow, caught: unknown): Error {
    const error = caught instanceof Error ? caught : new Error(String(caught));
    if (this.#stopped) return error;
    if (error instanceof WorkerTimeoutError) {
      this.#stats.timedOut += 1;
      const { setting } = this.#timeoutFor(job.kind);
      return new TaskTimeoutError(job.kind, error.timeoutMs, setting, error.workerKilled);
    }
    if (error instanceof WorkerCrashedError) {
      this.#stats.workerExits += 1;
      this.#workerExits.set(job.id, (this.#workerExits.get(job.id) ?? 0) + 1);
      // Jobs dropped while queued never come back to clear theirs: keep the newest only.
      if (this.#workerExits.size > 1000) this.#workerExits.delete(this.#workerExits.keys().next().value!);
    }
    return error;
  }

  #input(job: JobRow): {
    input: Record<string, unknown>;
    ts: number;
    /** the job's own prompt (a frame's or its camera's) */
    prompt?: string;
    media?: MediaInput[];
    /** the job's own schema (a question's: ids among its findings) */
    schema?: JsonSchema;
  } {
    const { context } = this.#o;
    if (job.kind === 'ask') {
      const i = job.input as { question: string; findings: { id: string }[] };
      return {
        ts: job.createdAt,
        input: { question: i.question, findings: i.findings },
        schema: askSchema(i.findings.map((f) => f.id)),
      };
    }
    if (job.kind === 'frame') {
      const i = job.input as { ts: number; input: string; width: number; height: number; prompt?: string };
      const path = this.#o.mediaPath(i.input);
      if (!existsSync(path))
        throw new Error(`the frame's image ${i.input} is no longer stored (media retention)`);
      return {
        ts: i.ts,
        input: { camera: job.source, at: new Date(i.ts).toISOString(), width: i.width, height: i.height },
        ...(i.prompt === undefined ? {} : { prompt: i.prompt }),
        media: [{ kind: 'image', path }],
      };
    }
    if (job.kind === 'audio') {
      const i = job.input as { ts: number; clip: string; seconds: number; prompt?: string };
      const path = this.#o.mediaPath(i.clip);
      if (!existsSync(path)) throw new Error(`the clip ${i.clip} is no longer stored (media retention)`);
      return {
        ts: i.ts,
        input: { source: job.source, at: new Date(i.ts).toISOString(), seconds: i.seconds },
        ...(i.prompt === undefined ? {} : { prompt: i.prompt }),
        media: [{ kind: 'audio', path }],
      };
    }
    if (job.kind === 'explain') {
      const event = context.event(Number(job.input.eventId));
      if (!event) throw new Error(`event ${String(job.input.eventId)} is no longer stored`);
      const detail = event.detail as { metric: string; unit: string | null };
      const recent = context.recentReadings(event.source, detail.metric, event.ts, 30);
      return {
        ts: event.ts,
        input: {
          device: event.source,
          ...detail,
          at: new Date(event.ts).toISOString(),
          message: event.message,
          recentValues: recent.map((r) => Number(r.value.toPrecision(5))),
        },
      };
    }
    const from = Number(job.input.from);
    const to = Number(job.input.to);
    return {
      ts: to,
      input: {
        device: job.source,
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        series: context.deviceSummary(job.source, from, to).map((s) => ({
          metric: s.metric,
          unit: s.unit,
          count: s.count,
          min: Number(s.min.toPrecision(5)),
          max: Number(s.max.toPrecision(5)),
          mean: Number(s.mean.toPrecision(5)),
        })),
        anomalies: context.eventCount(job.source, from, to),
      },
    };
  }

  /** Parses and checks the answer against the task's schema; throws with the reasons. */
  #validate(task: TaskDefinition, text: string): Record<string, unknown> {
    const key = JSON.stringify(task.schema);
    let validate = this.#validators.get(key);
    if (!validate) {
      validate = this.#ajv.compile(validationSchema(task.schema));
      this.#validators.set(key, validate);
    }
    let output: unknown;
    try {
      output = JSON.parse(text);
    } catch {
      throw new Error(`the model's answer is not JSON (${text.length} characters)`);
    }
    if (!validate(output)) {
      const errors = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('; ');
      throw new Error(`the model's answer does not match the schema: ${errors}`);
    }
    return output as Record<string, unknown>;
  }

  #sleep(ms?: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      let timer: Timer | undefined;
      const done = () => {
        timer?.cancel();
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
      if (ms !== undefined) timer = this.#o.clock.setTimeout(done, ms);
    });
  }
}
