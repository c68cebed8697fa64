/**
 * The process side of `npm run soak`: `outpost` children in their own process groups, killing them,
 * /proc readings (RSS), files' sizes, free ports and JSON over HTTP. Shells only; the figures and the
 * report are in soakReport.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root folder. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** tsx's loader by URL, so a child in another working folder still finds it. */
const TSX_LOADER = new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url).href;

// ---------------------------------------------------------------------------------------------
// Small helpers

export const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((done) => {
    if (signal?.aborted) return done();
    const timer = setTimeout(finish, ms);
    function finish() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      done();
    }
    signal?.addEventListener('abort', finish, { once: true });
  });

export const log = (message: string) => process.stderr.write(`soak: ${message}\n`);

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** VmRSS of a process in MB from /proc; null when it is gone (or this is not Linux). */
export function rssMb(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export const alive = (pid: number) => existsSync(`/proc/${pid}`);

export function fileMb(...paths: string[]): number {
  let bytes = 0;
  for (const path of paths) {
    try {
      bytes += statSync(path).size;
    } catch {
      // not there (yet): the WAL comes and goes with checkpoints
    }
  }
  return bytes / 1024 / 1024;
}

/** Newest modification time of any file under `dir`, ms. */
export function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.isFile()) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

export const sum = (record: unknown): number | null =>
  record !== null && typeof record === 'object'
    ? Object.values(record).reduce((a: number, b) => a + (typeof b === 'number' ? b : 0), 0)
    : null;

/** A number at `path` inside a JSON object, else null. */
export function at(value: unknown, ...path: string[]): number | null {
  let node = value;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return null;
    node = (node as Record<string, unknown>)[key];
  }
  return typeof node === 'number' && Number.isFinite(node) ? node : null;
}

export function has(value: unknown, ...path: string[]): boolean {
  let node = value;
  for (const key of path) {
    if (node === null || typeof node !== 'object' || !(key in node)) return false;
    node = (node as Record<string, unknown>)[key];
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Child processes

export interface Child {
  name: string;
  process: ChildProcess;
  exited: Promise<number | string>;
  /** exit code or signal name once exited */
  exit: number | string | undefined;
}

const children: Child[] = [];

/**
 * `outpost <argv>` from dist or through tsx, in its own process group: a Ctrl-C on the terminal reaches this
 * script only, which then stops the daemon itself with SIGTERM and sees its real exit code.
 */
export function spawnOutpost(
  name: string,
  runner: 'tsx' | 'dist',
  argv: string[],
  options: { cwd: string; env: NodeJS.ProcessEnv; stdout: 'pipe' | number; stderr: number },
): Child {
  const entry =
    runner === 'dist'
      ? [join(ROOT, 'dist/cli/main.js')]
      : ['--import', TSX_LOADER, join(ROOT, 'src/cli/main.ts')];
  const child = spawn(process.execPath, [...entry, ...argv], {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: ['ignore', options.stdout, options.stderr],
  });
  const record: Child = { name, process: child, exit: undefined, exited: Promise.resolve(0) };
  record.exited = new Promise((done) => {
    child.once('exit', (code, signal) => {
      record.exit = code ?? signal ?? 'unknown';
      done(record.exit);
    });
    child.once('error', (error) => {
      record.exit = `failed to start: ${error.message}`;
      done(record.exit);
    });
  });
  children.push(record);
  return record;
}

/** Kills what is still running, whole process groups (the daemon's model worker included). */
export function killAll() {
  for (const child of children) {
    if (child.exit !== undefined || child.process.pid === undefined) continue;
    try {
      process.kill(-child.process.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** The child's exit code (or signal name), or undefined when it is still running after `timeoutMs`. */
export async function waitExit(child: Child, timeoutMs: number): Promise<number | string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((done) => {
    timer = setTimeout(() => done(undefined), timeoutMs);
  });
  try {
    return await Promise.race([child.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The environment of the children: this one's, less any OUTPOST_* setting that would change the run. */
export function baseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('OUTPOST_')) env[key] = value;
  return env;
}

/** The OUTPOST_* settings of the daemon, for the record (the rest of the environment may hold secrets). */
export const outpostEnv = (env: NodeJS.ProcessEnv) =>
  Object.fromEntries(Object.entries(env).filter(([key]) => key.startsWith('OUTPOST_')));

/** A JSON answer, how long it took, or why there is none. */
export interface Status {
  json: Record<string, unknown> | undefined;
  ms: number;
  error?: string;
}

/** GET `url` as JSON; never throws (errors and non-2xx answers come back in `error`). */
export async function getJson(url: string, timeoutMs = 10_000): Promise<Status> {
  const started = performance.now();
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const ms = performance.now() - started;
    if (!response.ok) {
      await response.body?.cancel();
      return { json: undefined, ms, error: `${url.replace(/^http:\/\/[^/]+/, '')}: HTTP ${response.status}` };
    }
    return { json: (await response.json()) as Record<string, unknown>, ms };
  } catch (error) {
    return { json: undefined, ms: performance.now() - started, error: (error as Error).message };
  }
}
