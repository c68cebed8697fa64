import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { processRss, readOomKills, systemMemoryProbe } from '../../../src/inference/governor/memoryProbe.js';

/** A fake tree: `files` maps relative paths to contents. */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'outpost-probe-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

const meminfo = 'MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8192000 kB\n';
const psi =
  'some avg10=3.25 avg60=1.00 avg300=0.50 total=12345\nfull avg10=1.00 avg60=0.00 avg300=0.00 total=10\n';

describe('systemMemoryProbe', () => {
  it('reads MemAvailable, the cgroup v2 limit and usage, and PSI', () => {
    const proc = tree({
      meminfo,
      'self/cgroup': '0::/system.slice/outpost.service\n',
      'pressure/memory': psi,
    });
    const cgroup = tree({
      'system.slice/memory.max': 'max\n',
      'system.slice/outpost.service/memory.max': '2147483648\n',
      'system.slice/outpost.service/memory.current': '524288000\n',
    });
    expect(systemMemoryProbe({ procRoot: proc, cgroupRoot: cgroup }).sample()).toEqual({
      memAvailable: 8192000 * 1024,
      total: 16384000 * 1024,
      cgroupLimit: 2147483648,
      cgroupUsage: 524288000,
      pressureSome10: 3.25,
    });
  });

  it("treats 'max' as unlimited, and a smaller limit on a parent slice as binding", () => {
    const proc = tree({ meminfo, 'self/cgroup': '0::/outpost.slice/gw.service\n' });
    const unlimited = tree({
      'outpost.slice/gw.service/memory.max': 'max\n',
      'outpost.slice/gw.service/memory.current': '1000\n',
    });
    const sample = systemMemoryProbe({ procRoot: proc, cgroupRoot: unlimited }).sample();
    expect(sample.cgroupLimit).toBeUndefined();
    expect(sample.cgroupUsage).toBe(1000);
    expect(sample.pressureSome10).toBeUndefined();

    const parent = tree({
      'outpost.slice/memory.max': '1073741824\n',
      'outpost.slice/gw.service/memory.max': 'max\n',
      'outpost.slice/gw.service/memory.current': '1000\n',
    });
    expect(systemMemoryProbe({ procRoot: proc, cgroupRoot: parent }).sample().cgroupLimit).toBe(1073741824);
  });

  it('reads the hierarchy root inside a container that sees its cgroup as /', () => {
    const proc = tree({ meminfo, 'self/cgroup': '0::/\n' });
    const cgroup = tree({ 'memory.max': '3221225472\n', 'memory.current': '2048\n' });
    expect(systemMemoryProbe({ procRoot: proc, cgroupRoot: cgroup }).sample()).toMatchObject({
      cgroupLimit: 3221225472,
      cgroupUsage: 2048,
    });
  });

  it('leaves the cgroup fields undefined outside cgroup v2 and falls back to os figures without /proc', () => {
    const v1 = tree({ meminfo, 'self/cgroup': '4:memory:/docker/abc\n1:cpu:/\n' });
    const sample = systemMemoryProbe({ procRoot: v1, cgroupRoot: tree({}) }).sample();
    expect(sample.cgroupLimit).toBeUndefined();
    expect(sample.cgroupUsage).toBeUndefined();

    const none = systemMemoryProbe({ procRoot: tree({}), cgroupRoot: tree({}) }).sample();
    expect(none.total).toBe(totalmem());
    expect(none.memAvailable).toBeGreaterThan(0);
    expect(none.cgroupLimit).toBeUndefined();
    expect(none.pressureSome10).toBeUndefined();
  });

  it('gives positive, sane values on this machine', () => {
    const sample = systemMemoryProbe().sample();
    expect(sample.total).toBeGreaterThan(64 * 1024 * 1024);
    expect(sample.memAvailable).toBeGreaterThan(0);
    expect(sample.memAvailable).toBeLessThanOrEqual(sample.total);
    if (sample.cgroupLimit !== undefined) expect(sample.cgroupLimit).toBeGreaterThan(0);
    if (sample.cgroupUsage !== undefined) expect(sample.cgroupUsage).toBeGreaterThan(0);
    if (sample.pressureSome10 !== undefined) {
      expect(sample.pressureSome10).toBeGreaterThanOrEqual(0);
      expect(sample.pressureSome10).toBeLessThanOrEqual(100);
    }
  });
});

describe('processRss', () => {
  it('reads VmRSS in bytes, undefined for a missing process', () => {
    const proc = tree({
      '4242/status': 'Name:\tnode\nVmPeak:\t  900000 kB\nVmRSS:\t  123456 kB\nThreads:\t11\n',
    });
    expect(processRss(4242, proc)).toBe(123456 * 1024);
    expect(processRss(4243, proc)).toBeUndefined();
  });

  it.runIf(process.platform === 'linux')('reads this process on this machine', () => {
    const rss = processRss(process.pid);
    expect(rss).toBeGreaterThan(1024 * 1024);
    expect(rss).toBeLessThan(totalmem());
  });
});

describe('readOomKills', () => {
  it("reads the kernel's OOM kill count from vmstat, undefined where it is not counted", () => {
    const proc = tree({ vmstat: 'pgfault 9000\noom_kill 3\nthp_fault_alloc 0\n' });
    expect(readOomKills(proc)).toBe(3);
    expect(systemMemoryProbe({ procRoot: proc }).oomKills?.()).toBe(3);
    expect(readOomKills(tree({ vmstat: 'pgfault 9000\n' }))).toBeUndefined();
    expect(readOomKills(tree({}))).toBeUndefined();
  });
});
