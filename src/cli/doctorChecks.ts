/**
 * The board's side of `outpost doctor`: the data folder and its room, the clock; and the helpers the other
 * check files share. Node and the native modules: doctorNative.ts; the model, memory and projector:
 * doctorModel.ts and doctorProjector.ts; the broker: doctorBroker.ts; the microphone: doctorMicrophone.ts.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CheckResult, DoctorCheck, StandaloneCheck } from './doctor.js';

/** The first line of an error's message (or of any text). */
export function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0]?.trim() ?? '';
}

/** 1.2 GiB, 340 MiB, 3 KiB, 12 B: bytes for a message. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 ** 3) return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  if (bytes >= 1024 ** 2) return `${Math.round(bytes / 1024 ** 2)} MiB`;
  return bytes >= 1024 ? `${Math.round(bytes / 1024)} KiB` : `${bytes} B`;
}

/** A command's exit code (null: killed or not started), output, and the error of a failed start. */
export function runCommand(
  command: string,
  args: readonly string[],
  options: { timeoutMs: number; signal: AbortSignal },
): Promise<{ code: number | null; stdout: Buffer; stderr: string; startError?: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { timeout: options.timeoutMs, signal: options.signal, encoding: 'buffer', maxBuffer: 4 << 20 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        const startError = error && typeof error.code === 'string' ? error.code : undefined;
        resolve({ code, stdout, stderr: stderr.toString(), ...(startError ? { startError } : {}) });
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------------------
// The data folder

const DATA_DIR_FIX = 'set OUTPOST_DATA_DIR (dataDir) to a writable folder on a local volume';

/** `path`, or its nearest ancestor that exists. */
function existingAncestor(path: string): string {
  let current = path;
  while (!existsSync(current) && dirname(current) !== current) current = dirname(current);
  return current;
}

/** Why `path` cannot be a folder: the first component on the way that is a file. */
function blockingFile(path: string): string | undefined {
  for (let current = path; dirname(current) !== current; current = dirname(current)) {
    try {
      if (!statSync(current).isDirectory()) return current;
    } catch {
      // not there (yet): look further up
    }
  }
  return undefined;
}

async function checkDataDir(dir: string): Promise<CheckResult> {
  const file = blockingFile(dir);
  if (file !== undefined) {
    return { status: 'fail', message: `${dir}: ${file} is a file, not a folder`, fix: DATA_DIR_FIX };
  }
  let created: string | undefined;
  const probe = join(dir, `.outpost-doctor-${process.pid}`);
  try {
    created = mkdirSync(dir, { recursive: true });
    writeFileSync(probe, 'outpost doctor\n', { flag: 'wx' });
    unlinkSync(probe);
    const wal = await sqliteWal(dir);
    if (wal !== undefined) {
      return {
        status: 'fail',
        message: `${dir}: SQLite cannot keep a WAL database there: ${wal}`,
        fix: 'put the data folder on a local file system (ext4), not a network share: set OUTPOST_DATA_DIR',
      };
    }
    const how =
      created === undefined ? 'writable' : 'can be created and written (created, then removed again)';
    return { status: 'ok', message: `${dir} ${how}`, details: { dataDir: dir } };
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why =
      code === 'EACCES' || code === 'EPERM'
        ? `permission denied for uid ${process.getuid?.() ?? '?'}`
        : code === 'EROFS'
          ? 'read-only file system'
          : firstLine(error);
    const fix =
      code === 'EACCES' || code === 'EPERM'
        ? `give the service user the folder (\`chown -R $(id -u) ${dir}\`), or ${DATA_DIR_FIX}`
        : DATA_DIR_FIX;
    return { status: 'fail', message: `${dir} is not writable: ${why}`, fix };
  } finally {
    // Cleaning up must not turn a finding into an exception (a path under a file throws ENOTDIR).
    for (const path of [probe, created]) {
      try {
        if (path !== undefined) rmSync(path, { recursive: true, force: true });
      } catch {
        // nothing was left there
      }
    }
  }
}

/** Why SQLite cannot use WAL in `dir`, or undefined (also when better-sqlite3 does not load: its own check says so). */
async function sqliteWal(dir: string): Promise<string | undefined> {
  let Database: typeof import('better-sqlite3');
  try {
    Database = (await import('better-sqlite3')).default;
  } catch {
    return undefined;
  }
  const path = join(dir, `.outpost-doctor-${process.pid}.db`);
  try {
    const db = new Database(path);
    try {
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') return `journal_mode is ${String(mode)}`;
      db.exec('CREATE TABLE probe (x); INSERT INTO probe VALUES (1)');
      return undefined;
    } finally {
      db.close();
    }
  } catch (error) {
    return firstLine(error);
  } finally {
    for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(`${path}${suffix}`, { force: true });
  }
}

export const dataChecks: DoctorCheck[] = [
  {
    id: 'data-dir',
    timeoutMs: 5000,
    timeoutFix: 'the volume does not answer (a hung network mount?): set OUTPOST_DATA_DIR to a local folder',
    run: ({ config }) => checkDataDir(config.dataDir),
  },
  {
    id: 'disk',
    timeoutMs: 5000,
    timeoutFix: 'the volume does not answer (a hung network mount?): set OUTPOST_DATA_DIR to a local folder',
    async run({ config }) {
      const { minFreeBytes, maxDatabaseBytes, mediaMaxBytes } = config.store;
      const volume = existingAncestor(config.dataDir);
      const s = await statfs(volume);
      const free = s.bavail * s.bsize;
      const details = { volume, freeBytes: free, minFreeBytes, maxDatabaseBytes, mediaMaxBytes };
      const grow = minFreeBytes + maxDatabaseBytes + mediaMaxBytes;
      if (minFreeBytes > 0 && free < minFreeBytes) {
        return {
          status: 'fail',
          message: `${formatBytes(free)} free on ${volume}, below store.minFreeBytes ${formatBytes(minFreeBytes)}`,
          fix: `free space on that volume, or set OUTPOST_DATA_DIR to a larger one, or lower store.minFreeBytes (OUTPOST_STORE_MIN_FREE_BYTES)`,
          details,
        };
      }
      if (free < grow) {
        return {
          status: 'warn',
          message: `${formatBytes(free)} free on ${volume}; the database (${formatBytes(maxDatabaseBytes)}) and media (${formatBytes(mediaMaxBytes)}) may grow past it before store.minFreeBytes (${formatBytes(minFreeBytes)}) prunes`,
          fix: 'lower store.maxDatabaseBytes and store.mediaMaxBytes to fit the volume, or use a larger one',
          details,
        };
      }
      return { status: 'ok', message: `${formatBytes(free)} free on ${volume}`, details };
    },
  },
];

// ---------------------------------------------------------------------------------------------------------
// The clock

/** No board runs this code before this: a clock behind it is unset (no RTC, no NTP yet). */
const EARLIEST = Date.UTC(2024, 0, 1);
const DAY = 86_400_000;
const CLOCK_FIX =
  'set the time: give the board network and turn on NTP (`timedatectl set-ntp true`), or fit an RTC; TLS certificates and every timestamp depend on it';

export const timeChecks: StandaloneCheck[] = [
  {
    id: 'clock',
    timeoutMs: 2000,
    timeoutFix: CLOCK_FIX,
    async run() {
      // This file's modification time: when this build was installed (a day of slack for skewed builders).
      const built = statSync(fileURLToPath(import.meta.url)).mtimeMs;
      const floor = Math.max(EARLIEST, built - DAY);
      const now = Date.now();
      const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
      if (now < floor) {
        return {
          status: 'fail',
          message: `the clock says ${iso(now)}, before ${floor === EARLIEST ? '2024' : `this build (${iso(built)})`}`,
          fix: CLOCK_FIX,
        };
      }
      return { status: 'ok', message: `${iso(now)} (not before ${iso(floor)})` };
    },
  },
  {
    id: 'ntp',
    timeoutMs: 4000,
    timeoutFix: 'systemd does not answer: check `timedatectl status` by hand',
    async run({ signal }) {
      const r = await runCommand('timedatectl', ['show', '-p', 'NTPSynchronized', '--value'], {
        timeoutMs: 3000,
        signal,
      });
      const value = r.stdout.toString().trim();
      if (r.code !== 0 || (value !== 'yes' && value !== 'no')) {
        const why = r.startError === 'ENOENT' ? 'timedatectl is not installed' : firstLine(r.stderr);
        return {
          status: 'ok',
          message: `not checked: timedatectl cannot tell (${why || 'no answer'}); in a container the host keeps the time`,
        };
      }
      return value === 'yes'
        ? { status: 'ok', message: 'synchronized (timedatectl)' }
        : {
            status: 'warn',
            message: 'the clock is not NTP-synchronized (timedatectl NTPSynchronized=no)',
            fix: 'turn on NTP (`timedatectl set-ntp true`) and let UDP 123 out, or fit an RTC on boards that run offline',
          };
    },
  },
];
