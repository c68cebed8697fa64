import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Clock, Logger, Timer } from '../../common/index.js';
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
}

/** How a worker ended. */
export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** killed by the kernel's OOM killer (its counter in /proc/vmstat moved; without /proc: any SIGKILL) */
  oomLikely: boolean;
  /** we asked it to stop */
  expected: boolean;
}

export interface SupervisorEvents {
  /** a (re)started worker is ready */
  ready: [pid: number];
  exit: [exit: WorkerExit];
}

type Pending = { resolve: (reply: WorkerReply) => void; reject: (error: Error) => void };
type RequestBody<T extends WorkerRequest['type']> = Omit<Extract<WorkerRequest, { type: T }>, 'id'>;

/** The kernel's count of OOM kills since boot (Linux 4.13+), undefined where /proc/vmstat lacks it. */
function oomKills(): number | undefined {
  try {
    const match = /^oom_kill (\d+)$/m.exec(readFileSync('/proc/vmstat', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

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
 * its timeout and the abort did not help.
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
  /** crashes since start */
  crashes = 0;

  constructor(private readonly options: WorkerSupervisorOptions) {
    super();
    this.#restartDelay = options.minRestartMs ?? 500;
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

  /** Sends a request and resolves with its reply; `timeoutMs` aborts it, then kills a worker that hangs. */
  async request<T extends keyof ReplyOf>(
    body: RequestBody<T> & { type: T },
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<ReplyOf[T]> {
    await this.start();
    const child = this.#child!;
    const id = this.#nextId++;
    const { clock, logger } = this.options;
    return new Promise<ReplyOf[T]>((resolve, reject) => {
      let killTimer: Timer | undefined;
      const abort = (why: Error) => {
        if (!this.#pending.has(id)) return;
        child.send({ type: 'abort', id: this.#nextId++, target: id } satisfies WorkerRequest);
        // A worker that does not answer an abort (stopped, stuck in native code) is killed.
        killTimer = clock.setTimeout(() => {
          if (!this.#pending.has(id)) return;
          logger.warn({ pid: child.pid, request: body.type }, 'worker did not answer an abort; killing it');
          this.#pending.get(id)?.reject(why);
          this.#pending.delete(id);
          child.kill('SIGKILL');
        }, this.options.abortGraceMs ?? 2000);
      };
      const timeout =
        options.timeoutMs === undefined
          ? undefined
          : clock.setTimeout(
              () => abort(new WorkerTimeoutError(body.type, options.timeoutMs!)),
              options.timeoutMs,
            );
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
      child.send({ ...body, id } as WorkerRequest);
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
    this.#forward(child, 'stdout');
    this.#forward(child, 'stderr');
    this.#startedAt = this.options.clock.monotonic();
    this.#oomKillsAtFork = oomKills();
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
    const kills = oomKills();
    const oomLikely =
      signal === 'SIGKILL' &&
      !expected &&
      (kills === undefined || this.#oomKillsAtFork === undefined || kills > this.#oomKillsAtFork);
    const exit: WorkerExit = { code, signal, oomLikely, expected };
    this.#child = undefined;
    this.#ready = undefined;
    for (const pending of this.#pending.values()) pending.reject(new WorkerCrashedError(code, signal));
    this.#pending.clear();
    this.emit('exit', exit);
    if (expected) return;
    this.crashes += 1;
    const { clock, logger } = this.options;
    if (clock.monotonic() - this.#startedAt > (this.options.stableMs ?? 60_000)) {
      this.#restartDelay = this.options.minRestartMs ?? 500;
    }
    const delay = this.#restartDelay;
    this.#restartDelay = Math.min(delay * 2, this.options.maxRestartMs ?? 30_000);
    // What the native code said last is often the only trace of why it died (a GGML_ASSERT, a segfault).
    logger.warn(
      { code, signal, restartInMs: delay, lastStderr: this.#lastStderr },
      'inference worker exited; restarting',
    );
    this.#restartTimer = clock.setTimeout(() => {
      this.#restartTimer = undefined;
      if (!this.#stopping) void this.start().catch(() => {});
    }, delay);
  }
}
