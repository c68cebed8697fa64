/**
 * deploy/systemd: the unit as systemd 252 reads it (`systemd-analyze verify`, offline `security`), the keys it
 * promises, the files next to it, and install.sh run for real in throwaway root folders (never `/`; systemd is
 * not PID 1 in CI, so the systemctl step is only printed there).
 */
import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  copyFileSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CONFIG_KEYS } from '../../src/config/index.js';
import { freePort, MOSQUITTO } from '../helpers/mosquitto.js';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const deploy = join(repo, 'deploy/systemd');
const installSh = join(deploy, 'install.sh');
const unitText = readFileSync(join(deploy, 'outpost.service'), 'utf8');

const isRoot = process.getuid?.() === 0;
const systemdVersion = (() => {
  const out = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  return Number(/systemd (\d+)/.exec(out.stdout ?? '')?.[1] ?? 0);
})();

const temps: string[] = [];
function temp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `outpost-${prefix}-`));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) rmSync(dir, { recursive: true, force: true });
});

/** The unit's assignments per section, in order (a key may repeat; an empty value resets a list). */
function parseUnit(text: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      continue;
    }
    const eq = line.indexOf('=');
    const key = `${section}.${line.slice(0, eq)}`;
    keys.set(key, [...(keys.get(key) ?? []), line.slice(eq + 1)]);
  }
  return keys;
}

/** A copy of the unit (and the mosquitto drop-in next to it, as systemd would find it) in a temp folder. */
function unitCopy(): { dir: string; unit: string } {
  const dir = temp('unit');
  // verify checks that ExecStart's binary exists; only where /usr/bin/node is absent (nvm, a Node image) does
  // the copy name this test's node instead. Nothing else is rewritten.
  let text = unitText;
  try {
    accessSync('/usr/bin/node', constants.X_OK);
  } catch {
    text = text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `);
  }
  const unit = join(dir, 'outpost.service');
  writeFileSync(unit, text);
  mkdirSync(join(dir, 'outpost.service.d'));
  copyFileSync(join(deploy, 'outpost-mosquitto.conf'), join(dir, 'outpost.service.d/mosquitto.conf'));
  return { dir, unit };
}

describe('outpost.service', () => {
  // CI installs systemd (.ci/run): systemd-analyze must be there.
  it('passes systemd-analyze verify with its drop-in, without a warning', () => {
    const { dir, unit } = unitCopy();
    const run = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8' });
    const output = `${run.stdout}${run.stderr}`;
    expect(run.status, output).toBe(0);
    // Unknown keys and bad values are only warnings (exit 0), each naming the file and line: none for ours.
    // (On a booted system verify may also grumble about unrelated units it loads; those lines are not ours.)
    const ours = output.split('\n').filter((line) => line.includes(dir) || line.includes('outpost.service'));
    expect(ours).toEqual([]);
  });

  it('keeps its offline security exposure at 4.0 or below', () => {
    expect(systemdVersion, 'systemd-analyze security --offline needs systemd 250+').toBeGreaterThanOrEqual(
      250,
    );
    const { unit } = unitCopy();
    const run = spawnSync(
      'systemd-analyze',
      ['security', '--offline=yes', '--threshold=40', '--no-pager', unit],
      { encoding: 'utf8' },
    );
    const score = /Overall exposure level for outpost\.service: ([\d.]+)/.exec(run.stdout)?.[1];
    expect(run.status, `exposure ${score}\n${run.stderr}`).toBe(0);
    expect(Number(score)).toBeLessThanOrEqual(4);
  });

  it('carries the promised keys', () => {
    const keys = parseUnit(unitText);
    const one = (key: string) => {
      const values = keys.get(key);
      expect(values, key).toHaveLength(1);
      return values![0];
    };
    expect(one('Service.Type')).toBe('notify');
    expect(one('Service.NotifyAccess')).toBe('main');
    expect(one('Service.WatchdogSec')).toBe('30');
    expect(one('Service.Restart')).toBe('on-failure');
    expect(one('Service.RestartSec')).toBe('5');
    expect(Number(one('Service.TimeoutStartSec'))).toBeGreaterThanOrEqual(300);
    expect(one('Service.TimeoutStopSec')).toBe('30');
    expect(one('Service.EnvironmentFile')).toBe('-/etc/outpost/outpost.env');
    expect(keys.get('Service.Environment')).toEqual([
      'OUTPOST_CONFIG=/etc/outpost/outpost.yaml',
      'OUTPOST_DATA_DIR=/var/lib/outpost',
      'MALLOC_ARENA_MAX=2',
    ]);
    expect(one('Service.User')).toBe('outpost');
    expect(one('Service.Group')).toBe('outpost');
    expect(one('Service.SupplementaryGroups')).toBe('audio');
    expect(one('Service.WorkingDirectory')).toBe('/var/lib/outpost');
    expect(one('Service.ExecStart')).toBe('/usr/bin/node /opt/outpost/dist/cli/main.js start');
    expect(one('Service.ProtectSystem')).toBe('strict');
    expect(one('Service.ReadWritePaths')).toBe('/var/lib/outpost');
    expect(one('Service.NoNewPrivileges')).toBe('yes');
    expect(one('Service.PrivateTmp')).toBe('yes');
    expect(one('Service.ProtectHome')).toBe('yes');
    expect(one('Service.ProtectControlGroups')).toBe('yes');
    expect(one('Service.CapabilityBoundingSet')).toBe('');
    expect(one('Service.AmbientCapabilities')).toBe('');
    expect(one('Service.LimitNOFILE')).toBe('65536');
    expect(one('Service.OOMPolicy')).toBe('continue');
    expect(one('Install.WantedBy')).toBe('multi-user.target');
    // Each of these breaks the daemon: V8's JIT, the microphone and GPU devices, /proc/meminfo for the governor.
    for (const key of [
      'MemoryDenyWriteExecute',
      'PrivateDevices',
      'ProtectClock',
      'ProcSubset',
      'DevicePolicy',
    ]) {
      expect(keys.has(`Service.${key}`), key).toBe(false);
    }
  });

  it('names only settings the daemon knows, in the unit, its drop-in and outpost.env.example', () => {
    const known = new Set([...CONFIG_KEYS.map((key) => key.env), 'OUTPOST_CONFIG']);
    const files = ['outpost.service', 'outpost-mosquitto.conf', 'outpost.env.example', 'outpost.yaml'];
    const named = files.flatMap(
      (file) => readFileSync(join(deploy, file), 'utf8').match(/OUTPOST_[A-Z0-9_]+/g) ?? [],
    );
    expect(named.length).toBeGreaterThan(20);
    expect([...new Set(named)].filter((name) => !known.has(name))).toEqual([]);
    // systemd reads the env file itself: every line a comment or KEY=value, nothing a shell would need.
    for (const line of readFileSync(join(deploy, 'outpost.env.example'), 'utf8').split('\n')) {
      expect(line === '' || line.startsWith('#') || /^OUTPOST_[A-Z0-9_]+=\S*$/.test(line), line).toBe(true);
    }
  });

  it('starts the config loader as the service would: shipped files, the unit environment, no errors', () => {
    const dir = temp('printconfig');
    const yaml = join(dir, 'outpost.yaml');
    copyFileSync(join(deploy, 'outpost.yaml'), yaml);
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', OUTPOST_LOG_FORMAT: 'json' };
    // Environment= of the unit and its mosquitto drop-in, then the env file (all commented as shipped).
    for (const file of ['outpost.service', 'outpost-mosquitto.conf']) {
      for (const value of parseUnit(readFileSync(join(deploy, file), 'utf8')).get('Service.Environment') ??
        []) {
        const [name, ...rest] = value.split('=');
        env[name!] = rest.join('=');
      }
    }
    env.OUTPOST_CONFIG = yaml;
    const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
    const run = spawnSync(
      process.execPath,
      ['--import', tsx, join(repo, 'src/cli/main.ts'), 'start', '--print-config'],
      { cwd: dir, env, encoding: 'utf8' },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toContain('/var/lib/outpost');
    expect(run.stdout).toContain('mqtt://127.0.0.1:1883');
  });
});

describe('mosquitto drop-in', () => {
  const settings = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));

  it('holds the same settings as deploy/mosquitto/outpost.conf', () => {
    expect(settings(join(deploy, 'mosquitto.conf.d/outpost.conf'))).toEqual(
      settings(join(repo, 'deploy/mosquitto/outpost.conf')),
    );
  });

  it('is loaded by a real mosquitto through a Debian-style include_dir', async () => {
    const dir = temp('mosquitto');
    const port = await freePort();
    mkdirSync(join(dir, 'conf.d'));
    // Only the port moves (1883 may be taken here); the rest is the file as installed.
    const dropIn = readFileSync(join(deploy, 'mosquitto.conf.d/outpost.conf'), 'utf8');
    expect(dropIn).toMatch(/^listener 1883 127\.0\.0\.1$/m);
    writeFileSync(join(dir, 'conf.d/outpost.conf'), dropIn.replace(/^listener 1883 /m, `listener ${port} `));
    // Debian's /etc/mosquitto/mosquitto.conf, with its paths in the temp folder (and no drop to the mosquitto
    // user as root, who could not read it).
    writeFileSync(
      join(dir, 'mosquitto.conf'),
      `${isRoot ? 'user root\n' : ''}persistence true\npersistence_location ${dir}/\nlog_dest stderr\n` +
        `include_dir ${dir}/conf.d\n`,
    );
    const child = spawn(MOSQUITTO, ['-c', join(dir, 'mosquitto.conf')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    const listening = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      child.stderr?.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        if (log.includes(`listen socket on port ${port}`)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.once('exit', () => resolve(false));
    });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    expect(listening, log).toBe(true);
    expect(log).not.toMatch(/error/i);
  });
});

/** Every entry under `dir`: type, mode, owner, size, content hash or link target, and a file's mtime. */
function listing(dir: string): string[] {
  const rows: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const path = join(dir, rel, name);
      const entry = join(rel, name);
      const st = lstatSync(path);
      const head = `${entry} ${(st.mode & 0o170000).toString(8)} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isSymbolicLink()) rows.push(`${head} -> ${readlinkSync(path)}`);
      else if (st.isDirectory()) {
        rows.push(head);
        walk(entry);
      } else {
        const hash = createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
        rows.push(`${head} ${st.size} ${hash} ${st.mtimeMs}`);
      }
    }
  };
  walk('');
  return rows;
}

/** A small built app: what install.sh copies (the real node_modules is far too large for a test). */
function fakeApp(): string {
  const source = temp('app');
  mkdirSync(join(source, 'dist/cli'), { recursive: true });
  writeFileSync(join(source, 'dist/cli/main.js'), '#!/usr/bin/env node\nconsole.log("outpost");\n');
  writeFileSync(join(source, 'package.json'), '{"name":"outpost","version":"0.1.0","type":"module"}\n');
  writeFileSync(join(source, 'package-lock.json'), '{"name":"outpost","lockfileVersion":3}\n');
  mkdirSync(join(source, 'node_modules/dep'), { recursive: true });
  mkdirSync(join(source, 'node_modules/.bin'));
  writeFileSync(join(source, 'node_modules/dep/index.js'), 'module.exports = 1;\n');
  symlinkSync('../dep/index.js', join(source, 'node_modules/.bin/dep'));
  return source;
}

function install(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync('bash', [installSh, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH } });
}

describe('install.sh', () => {
  it('parses (bash -n) and passes shellcheck (CI installs it)', () => {
    const syntax = spawnSync('bash', ['-n', installSh], { encoding: 'utf8' });
    expect(syntax.status, syntax.stderr).toBe(0);
    const lint = spawnSync('shellcheck', [installSh], { encoding: 'utf8' });
    expect(lint.status, lint.stdout).toBe(0);
  });

  it('installs into a throwaway root; a second run changes nothing and keeps what the operator edited', () => {
    const root = temp('root');
    const source = fakeApp();
    const first = install('--root', root, '--source', source, '--with-mosquitto');
    expect(first.status, first.stderr + first.stdout).toBe(0);
    expect(first.stdout).toContain('user: skipped');
    expect(first.stdout).toContain(`systemctl --root=${root} enable mosquitto.service outpost.service`);

    const at = (path: string) => join(root, path);
    expect(readFileSync(at('etc/systemd/system/outpost.service'), 'utf8')).toBe(unitText);
    expect(readFileSync(at('opt/outpost/dist/cli/main.js'), 'utf8')).toContain('outpost');
    expect(readlinkSync(at('opt/outpost/node_modules/.bin/dep'))).toBe('../dep/index.js');
    expect(lstatSync(at('var/lib/outpost')).mode & 0o777).toBe(0o750);
    expect(lstatSync(at('etc/outpost')).mode & 0o777).toBe(0o750);
    expect(lstatSync(at('etc/outpost/outpost.env')).mode & 0o777).toBe(0o640);
    expect(readFileSync(at('etc/outpost/outpost.env'), 'utf8')).toBe(
      readFileSync(join(deploy, 'outpost.env.example'), 'utf8'),
    );
    expect(readFileSync(at('etc/systemd/system/outpost.service.d/mosquitto.conf'), 'utf8')).toContain(
      'After=mosquitto.service',
    );
    expect(lstatSync(at('etc/mosquitto/conf.d/outpost.conf')).mode & 0o777).toBe(0o644);

    // The operator edits the configuration between the runs.
    writeFileSync(at('etc/outpost/outpost.env'), 'OUTPOST_HTTP_TOKEN=edited\n');
    writeFileSync(at('etc/outpost/outpost.yaml'), 'gatewayId: edited\n');
    writeFileSync(at('etc/mosquitto/conf.d/outpost.conf'), 'listener 1883 0.0.0.0\n');
    const before = listing(root);
    const second = install('--root', root, '--source', source, '--with-mosquitto');
    expect(second.status, second.stderr + second.stdout).toBe(0);
    expect(listing(root)).toEqual(before);
    expect(second.stdout).toContain('app: unchanged');
    expect(second.stdout).toContain('config: kept');
    expect(second.stdout).not.toMatch(/^\w+: (wrote|installed|created|corrected) /m);

    // An upgrade: new code replaces the app as a whole; the configuration stays.
    writeFileSync(join(source, 'dist/cli/main.js'), 'console.log("outpost 2");\n');
    const third = install('--root', root, '--source', source, '--no-enable');
    expect(third.status, third.stderr + third.stdout).toBe(0);
    expect(third.stdout).toContain('app: installed');
    expect(readFileSync(at('opt/outpost/dist/cli/main.js'), 'utf8')).toContain('outpost 2');
    expect(readFileSync(at('etc/outpost/outpost.env'), 'utf8')).toBe('OUTPOST_HTTP_TOKEN=edited\n');
    expect(readFileSync(at('etc/outpost/outpost.yaml'), 'utf8')).toBe('gatewayId: edited\n');
    expect(readdirSync(at('opt')).sort()).toEqual(['outpost']);
  });

  // useradd --prefix needs root, as CI runs.
  it('adds the outpost user to a root folder that has its own etc/passwd, once', () => {
    const root = temp('image');
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\n');
    writeFileSync(join(root, 'etc/group'), 'root:x:0:\naudio:x:29:\n');
    const hostPasswd = readFileSync('/etc/passwd', 'utf8');
    const source = fakeApp();
    const first = install('--root', root, '--source', source);
    expect(first.status, first.stderr + first.stdout).toBe(0);
    const before = listing(root);
    const second = install('--root', root, '--source', source);
    expect(second.status, second.stderr + second.stdout).toBe(0);
    expect(listing(root)).toEqual(before);

    const user = readFileSync(join(root, 'etc/passwd'), 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('outpost:'));
    expect(user).toHaveLength(1);
    const [, , uid, gid, , home, shell] = user[0]!.split(':');
    expect([home, shell]).toEqual(['/var/lib/outpost', '/usr/sbin/nologin']);
    const data = lstatSync(join(root, 'var/lib/outpost'));
    expect([data.uid, data.gid]).toEqual([Number(uid), Number(gid)]);
    const env = lstatSync(join(root, 'etc/outpost/outpost.env'));
    expect([env.uid, env.gid]).toEqual([0, Number(gid)]);
    // The host's own users are untouched.
    expect(readFileSync('/etc/passwd', 'utf8')).toBe(hostPasswd);
  });

  it('refuses bad input with a clear message and exit code 2', () => {
    const root = temp('bad');
    const cases: [string[], RegExp][] = [
      [['--root', join(root, 'missing')], /--root .*: no such folder/],
      [['--root'], /--root needs a folder/],
      [['--root', root, '--source', root], /no dist\/cli\/main\.js \(build the app first/],
      [['--frobnicate'], /unknown option '--frobnicate'/],
    ];
    for (const [args, message] of cases) {
      const run = install(...args);
      expect(run.status, args.join(' ')).toBe(2);
      expect(run.stderr).toMatch(message);
    }
    expect(readdirSync(root)).toEqual([]);
    const help = install('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--with-mosquitto');
  });
});
