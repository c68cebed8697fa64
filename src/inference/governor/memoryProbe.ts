import { readFileSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import { posix } from 'node:path';

/** One reading of the machine's memory, as the governor sees it. */
export interface MemorySample {
  /** `MemAvailable` from /proc/meminfo, bytes (os.freemem() where /proc is absent). */
  memAvailable: number;
  /**
   * cgroup v2 `memory.max` of the daemon's cgroup, bytes (the smallest limit on the path up to the root);
   * undefined when unlimited or not in a cgroup v2.
   */
  cgroupLimit?: number;
  /** cgroup v2 `memory.current` of the daemon's cgroup, bytes; undefined when not in a cgroup v2. */
  cgroupUsage?: number;
  /** PSI memory `some avg10`, percent; undefined when /proc/pressure is absent. */
  pressureSome10?: number;
  /** Total RAM (`MemTotal`), bytes. */
  total: number;
}

/** Reads the memory state on demand (synchronously: a handful of small pseudo-files). */
export interface MemoryProbe {
  sample(): MemorySample;
  /**
   * The kernel's count of OOM kills since boot (`oom_kill` of /proc/vmstat, Linux 4.13+); undefined where
   * it is not counted. The worker supervisor reads it to tell the OOM killer's SIGKILL from any other.
   * Optional: a probe without it leaves the supervisor reading /proc/vmstat itself.
   */
  oomKills?(): number | undefined;
}

export interface SystemMemoryProbeOptions {
  /** Where procfs is mounted; tests point it at a fake tree. Default `/proc`. */
  procRoot?: string;
  /** Where the cgroup v2 hierarchy is mounted; tests point it at a fake tree. Default `/sys/fs/cgroup`. */
  cgroupRoot?: string;
}

const KIB = 1024;

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The `kB` value of one `Key:   123 kB` line of /proc/meminfo or /proc/<pid>/status, in bytes. */
function kibField(text: string | undefined, key: string): number | undefined {
  if (text === undefined) return undefined;
  const match = new RegExp(`^${key}:\\s*(\\d+)\\s*kB`, 'm').exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]) * KIB;
}

/** A cgroup v2 byte count; `max` (unlimited), empty or garbage give undefined. */
function cgroupBytes(text: string | undefined): number | undefined {
  const value = text?.trim();
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  return Number(value);
}

/** The cgroup v2 path of this process (the `0::<path>` line), or undefined outside a v2 hierarchy. */
function cgroupPath(procRoot: string): string | undefined {
  const text = readText(posix.join(procRoot, 'self', 'cgroup'));
  const line = text?.split('\n').find((l) => l.startsWith('0::'));
  return line === undefined ? undefined : line.slice(3).trim() || '/';
}

/**
 * The limit and usage of the daemon's cgroup. The limit is the smallest `memory.max` from its cgroup up
 * to the root (a limit on a parent slice binds too). When the cgroup's folder is not visible (a container
 * without its own cgroup namespace), the hierarchy's root files are read instead.
 */
function readCgroup(procRoot: string, cgroupRoot: string): { limit?: number; usage?: number } {
  const path = cgroupPath(procRoot);
  if (path === undefined) return {};
  let dir = posix.join(cgroupRoot, path);
  if (
    readText(posix.join(dir, 'memory.current')) === undefined &&
    readText(posix.join(dir, 'memory.max')) === undefined
  ) {
    dir = cgroupRoot;
  }
  const usage = cgroupBytes(readText(posix.join(dir, 'memory.current')));
  let limit: number | undefined;
  const root = posix.resolve(cgroupRoot);
  for (let current = posix.resolve(dir); ; current = posix.dirname(current)) {
    const max = cgroupBytes(readText(posix.join(current, 'memory.max')));
    if (max !== undefined && (limit === undefined || max < limit)) limit = max;
    if (current === root || !current.startsWith(`${root}/`)) break;
  }
  return { limit, usage };
}

/** PSI `some avg10` of /proc/pressure/memory, percent. */
function readPressure(procRoot: string): number | undefined {
  const text = readText(posix.join(procRoot, 'pressure', 'memory'));
  const match = text === undefined ? null : /^some\s.*?\bavg10=([\d.]+)/m.exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/**
 * The memory probe of this machine: /proc/meminfo (`MemAvailable`, `MemTotal`), the daemon's cgroup v2
 * (`memory.max`, `memory.current`, found through /proc/self/cgroup) and /proc/pressure/memory. Where a file
 * is missing (non-Linux development machines, old kernels) it falls back to os.freemem()/os.totalmem() and
 * leaves the cgroup and pressure fields undefined.
 */
export function systemMemoryProbe(options: SystemMemoryProbeOptions = {}): MemoryProbe {
  const procRoot = options.procRoot ?? '/proc';
  const cgroupRoot = options.cgroupRoot ?? '/sys/fs/cgroup';
  return {
    sample(): MemorySample {
      const meminfo = readText(posix.join(procRoot, 'meminfo'));
      const cgroup = readCgroup(procRoot, cgroupRoot);
      const sample: MemorySample = {
        memAvailable: kibField(meminfo, 'MemAvailable') ?? freemem(),
        total: kibField(meminfo, 'MemTotal') ?? totalmem(),
      };
      if (cgroup.limit !== undefined) sample.cgroupLimit = cgroup.limit;
      if (cgroup.usage !== undefined) sample.cgroupUsage = cgroup.usage;
      const pressure = readPressure(procRoot);
      if (pressure !== undefined) sample.pressureSome10 = pressure;
      return sample;
    },
    oomKills: () => readOomKills(procRoot),
  };
}

/** The kernel's count of OOM kills since boot (Linux 4.13+), undefined where /proc/vmstat lacks it. */
export function readOomKills(procRoot = '/proc'): number | undefined {
  const match = /^oom_kill (\d+)$/m.exec(readText(posix.join(procRoot, 'vmstat')) ?? '');
  return match ? Number(match[1]) : undefined;
}

/** Resident set size (`VmRSS` of /proc/<pid>/status) of a process, bytes; undefined when it cannot be read. */
export function processRss(pid: number, procRoot = '/proc'): number | undefined {
  return kibField(readText(posix.join(procRoot, String(pid), 'status')), 'VmRSS');
}
