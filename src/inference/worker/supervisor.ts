import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import type { Clock, Logger, Timer } from '../../common/index.js';
import { readOomKills } from '../governor/memoryProbe.js';
import { WorkerCrashedError, WorkerFailedError, WorkerTimeoutError } from './errors.js';
import type { ReplyOf, WorkerReply, WorkerRequest } from './protocol.js';

export interface WorkerSupervisorOptions {
  logger: Logger;
  clock: Clock;
  /** First restart delay after a crash, ms; doubles up to maxRestartMs. Default 500. */
  minRestartMs?: number;
  /** Longest restart delay, ms. Default 30000. */
  maxRestartMs?: number;
  /** A worker that ran this long without crashing resets the backoff, ms. Default 60000. */
  stableMs?: number;
  /** Grace after an abort before a hung worker is killed, ms. Default 2000. */
  abortGraceMs?: number;
  /**
   * The kernel's count of OOM kills since boot, read at fork and at exit: a SIGKILL while it moved is taken
   * for the OOM killer. Undefined where the kernel does not count them (then any SIGKILL from outside is).
   * Default: `oom_kill` of /proc/vmstat. Tests inject a counter, since a real OOM kill cannot be caused there.
   */
  oomKills?: () => number | undefined;
}

/** How a worker ended. */
export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** killed by the kernel's OOM killer (its counter in /proc/vmstat moved; without /proc: any SIGKILL) */
  oomLikely: boolean;
  /** we asked it to stop */
  expected: boolean;
  /** we killed it: it did not answer the abort of a timed-out (or cancelled) request */
  hung: boolean;
}

export interface SupervisorEvents {
  /** a (re)started worker is ready */
  ready: [pid: number];
  exit: [exit: WorkerExit];
}

type Pending = {
  resolve: (reply: WorkerReply) => void;
  reject: (error: Error) => void;
  /** set when we kill the worker for this request: what it is rejected with once the worker is gone */
  killedFor?: Error;
};
type RequestBody<T extends WorkerRequest['type']> = Omit<Extract<WorkerRequest, { type: T }>, 'id'>;

/** Longest worker output line logged, chars; stderr lines kept for a crash report. */
const MAX_LINE = 500;
const KEEP_STDERR_LINES = 20;

const here = import.meta.url;
/** The worker entry beside this file: compiled JS in production, TypeScript (through tsx) in development. */
const workerEntry = new URL(here.endsWith('.ts') ? './main.ts' : './main.js', here);
const tsxLoader = new URL('../../../node_modules/tsx/dist/loader.mjs', here).href;

/**
 * Keeps one inference worker process alive: forks it, correlates requests and replies, restarts it with
 * backoff after a crash (pending requests fail with WorkerCrashedError), kills it when a request outlives
 * its timeout and the abort did not help (that request fails with WorkerTimeoutError once the worker is
 * gone, so the next request never reaches the dying process).
 */
export class WorkerSupervisor extends EventEmitter<SupervisorEvents> {
  #child: ChildProcess | undefined;
  #ready: Promise<void> | undefined;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #restartDelay: number;
  #restartTimer: Timer | undefined;
  #startedAt = 0;
  #oomKillsAtFork: number | undefined;
  #stopping = false;
  #lastStderr: string[] = [];
  /** the worker we killed because it did not answer an abort */
  #killedHung: ChildProcess | undefined;
  readonly #oomKills: () => number | undefined;
  /** exits we did not ask for and did not cause (crashes, outside kills, the OOM killer), since start */
  crashes = 0;
  /** of those, the ones taken for the OOM killer */
  oomKills = 0;
  /** requests that outlived their timeout */
  timeouts = 0;
  /** workers killed because they did not answer the abort of a timed-out or cancelled request */
  hungKills = 0;
  /** how the last worker ended, with when (epoch ms) */
  lastExit: (WorkerExit & { at: number }) | undefined;

  constructor(private readonly options: WorkerSupervisorOptions) {
    super();
    this.#restartDelay = options.minRestartMs ?? 500;
    this.#oomKills = options.oomKills ?? (() => readOomKills());
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get alive(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Forks the worker (if none runs) and resolves when it is ready. */
  start(): Promise<void> {
    this.#stopping = false;
    this.#ready ??= this.#fork();
    return this.#ready;
  }

  /**
   * Sends a request and resolves with its reply. `timeoutMs` (or `signal`) aborts it; a worker that does
   * not answer the abort within abortGraceMs (stopped, stuck in native code) is killed, and the request
   * fails with the timeout (or the signal's reason) once it has exited.
   */
  async request<T extends keyof ReplyOf>(
    body: RequestBody<T> & { type: T },
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<ReplyOf[T]> {
    await this.start();
    const child = this.#child;
    // It died between ready and now: the caller retries as after any crash.
    if (!child) throw new WorkerCrashedError(this.lastExit?.code ?? null, this.lastExit?.signal ?? null);
    const id = this.#nextId++;
    const { clock, logger } = this.options;
    const grace = this.options.abortGraceMs ?? 2000;
    return new Promise<ReplyOf[T]>((resolve, reject) => {
      let killTimer: Timer | undefined;
      const abort = (why: Error) => {
        const pending = this.#pending.get(id);
        if (!pending || killTimer) return;
        child.send({ type: 'abort', id: this.#nextId++, target: id } satisfies WorkerRequest, () => {});
        killTimer = clock.setTimeout(() => {
          if (!this.#pending.has(id)) return;
          logger.warn({ pid: child.pid, request: body.type }, 'worker did not answer an abort; killing it');
          this.hungKills += 1;
          this.#killedHung = child;
          pending.killedFor =
            why instanceof WorkerTimeoutError
              ? new WorkerTimeoutError(why.request, why.timeoutMs, true)
              : why;
          child.kill('SIGKILL');
          // A process that outlives SIGKILL (uninterruptible I/O) must not hold the caller forever.
          killTimer = clock.setTimeout(() => {
            if (!this.#pending.has(id)) return;
            this.#pending.delete(id);
            pending.reject(pending.killedFor ?? why);
          }, grace);
        }, grace);
      };
      const timeout =
        options.timeoutMs === undefined
          ? undefined
          : clock.setTimeout(() => {
              this.timeouts += 1;
              abort(new WorkerTimeoutError(body.type, options.timeoutMs!));
            }, options.timeoutMs);
      const onAbort = () =>
        abort(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => {
        timeout?.cancel();
        killTimer?.cancel();
        options.signal?.removeEventListener('abort', onAbort);
      };
      this.#pending.set(id, {
        resolve: (reply) => {
          settle();
          if (reply.type === 'failed') {
            reject(
              reply.error.aborted && options.timeoutMs !== undefined && !options.signal?.aborted
                ? new WorkerTimeoutError(body.type, options.timeoutMs)
                : new WorkerFailedError(body.type, reply.error.message),
            );
          } else resolve(reply as ReplyOf[T]);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      });
      // The channel closed under us: the exit that follows fails this request.
      child.send({ ...body, id } as WorkerRequest, () => {});
    });
  }

  /** Asks the worker to unload and exit; kills it after `timeoutMs`. Safe to call twice. */
  async stop(timeoutMs = 3000): Promise<void> {
    this.#stopping = true;
    this.#restartTimer?.cancel();
    const child = this.#child;
    if (!child || !this.alive) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const timer = this.options.clock.setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.send({ type: 'shutdown', id: this.#nextId++ } satisfies WorkerRequest, () => {});
    await exited;
    timer.cancel();
  }

  /** Sends a signal to the worker (tests and the OOM path use it). */
  kill(signal: NodeJS.Signals): void {
    this.#child?.kill(signal);
  }

  #fork(): Promise<void> {
    const { logger } = this.options;
    const execArgv = workerEntry.pathname.endsWith('.ts') ? ['--import', tsxLoader] : [];
    const child = fork(workerEntry, [], {
      execArgv,
      serialization: 'advanced',
      // llama.cpp and llama.node write their own logs to stdout/stderr: into the daemon's log at debug,
      // never onto its stdout (which may be JSON lines for a collector).
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.#child = child;
    this.#lastStderr = [];
    // An IPC error (a send racing the worker's death) is followed by its exit, which is what counts.
    child.on('error', (error) => logger.debug({ err: error.message }, 'inference worker channel error'));
    this.#forward(child, 'stdout');
    this.#forward(child, 'stderr');
    this.#startedAt = this.options.clock.monotonic();
    this.#oomKillsAtFork = this.#oomKills();
    const ready = new Promise<void>((resolve, reject) => {
      const onMessage = (reply: WorkerReply) => {
        if (reply.type === 'ready') {
          logger.info({ pid: reply.pid }, 'inference worker ready');
          resolve();
          this.emit('ready', reply.pid);
          return;
        }
        const pending = this.#pending.get(reply.id);
        if (pending) {
          this.#pending.delete(reply.id);
          pending.resolve(reply);
        }
      };
      child.on('message', onMessage);
      child.once('exit', (code, signal) => {
        reject(new WorkerCrashedError(code, signal));
        this.#onExit(child, code, signal);
      });
    });
    // A rejection here is also delivered to the pending requests: never unhandled.
    ready.catch(() => {});
    return ready;
  }

  /** Logs the worker's output lines at debug (bounded in length); keeps the last stderr lines. */
  #forward(child: ChildProcess, stream: 'stdout' | 'stderr') {
    const source = child[stream];
    if (!source) return;
    const lines = createInterface({ input: source, crlfDelay: Number.POSITIVE_INFINITY });
    lines.on('line', (line) => {
      const text = line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}...` : line;
      if (stream === 'stderr') {
        this.#lastStderr.push(text);
        if (this.#lastStderr.length > KEEP_STDERR_LINES) this.#lastStderr.shift();
      }
      this.options.logger.debug({ worker: child.pid, stream, line: text }, 'inference worker output');
    });
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null) {
    if (this.#child !== child) return;
    const expected = this.#stopping;
    const hung = this.#killedHung === child;
    this.#killedHung = undefined;
    const kills = this.#oomKills();
    const oomLikely =
      signal === 'SIGKILL' &&
      !expected &&
      !hung &&
      (kills === undefined || this.#oomKillsAtFork === undefined || kills > this.#oomKillsAtFork);
    const exit: WorkerExit = { code, signal, oomLikely, expected, hung };
    this.lastExit = { ...exit, at: this.options.clock.now() };
    this.#child = undefined;
    this.#ready = undefined;
    for (const pending of this.#pending.values())
      pending.reject(pending.killedFor ?? new WorkerCrashedError(code, signal, oomLikely));
    this.#pending.clear();
    this.emit('exit', exit);
    if (expected) return;
    if (!hung) this.crashes += 1;
    if (oomLikely) this.oomKills += 1;
    const { clock, logger } = this.options;
    if (clock.monotonic() - this.#startedAt > (this.options.stableMs ?? 60_000)) {
      this.#restartDelay = this.options.minRestartMs ?? 500;
    }
    const delay = this.#restartDelay;
    this.#restartDelay = Math.min(delay * 2, this.options.maxRestartMs ?? 30_000);
    // What the native code said last is often the only trace of why it died (a GGML_ASSERT, a segfault).
    logger.warn(
      { code, signal, oomLikely, hung, restartInMs: delay, lastStderr: this.#lastStderr },
      'inference worker exited; restarting',
    );
    this.#restartTimer = clock.setTimeout(() => {
      this.#restartTimer = undefined;
      if (!this.#stopping) void this.start().catch(() => {});
    }, delay);
  }
}
