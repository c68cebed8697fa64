/**
 * deploy/balena's scripts, run for real: prune-prebuilts.sh on a fake node_modules, entry.sh, the health
 * check against a local server, stage.sh on this repository, and mosquitto's LAN listener with a real
 * mosquitto.
 */
import { execFile, execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort, MOSQUITTO } from '../helpers/mosquitto.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = join(root, 'deploy/balena');
const read = (name: string) => readFileSync(join(dir, name), 'utf8');

describe('prune-prebuilts.sh', () => {
  const script = join(dir, 'prune-prebuilts.sh');
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, unknown>;
  };
  /** Every platform package the lock file knows, as npm would lay them out on a machine that took all. */
  const platformPackages = Object.keys(lock.packages)
    .filter((path) => /^node_modules\/(@node-llama-cpp\/|@fugood\/|@img\/)/.test(path))
    .map((path) => path.slice('node_modules/'.length));
  let tree: string | undefined;

  const fakeTree = (packages: string[]) => {
    tree = mkdtempSync(join(tmpdir(), 'outpost-prune-'));
    for (const name of packages) {
      mkdirSync(join(tree, 'node_modules', name), { recursive: true });
      writeFileSync(join(tree, 'node_modules', name, 'package.json'), '{}');
    }
    return join(tree, 'node_modules');
  };
  const left = (modules: string, scope: string) => readdirSync(join(modules, scope)).sort();

  afterEach(() => {
    if (tree) rmSync(tree, { recursive: true, force: true });
    tree = undefined;
  });

  it('passes bash -n', () => {
    execFileSync('bash', ['-n', script]);
  });

  it("keeps an arm64 board's CPU builds and removes the others, nested copies included", async () => {
    expect(platformPackages).toContain('@node-llama-cpp/linux-x64-cuda');
    const modules = fakeTree([...platformPackages, 'sharp/node_modules/@img/sharp-win32-x64']);
    await run('bash', [script, 'aarch64', modules]);
    expect(left(modules, '@node-llama-cpp')).toEqual(['linux-arm64']);
    expect(left(modules, '@fugood')).toEqual(['llama.node', 'node-llama-linux-arm64']);
    expect(left(modules, '@img')).toEqual(['colour', 'sharp-libvips-linux-arm64', 'sharp-linux-arm64']);
    expect(readdirSync(join(modules, 'sharp/node_modules/@img'))).toEqual([]);
  });

  it('keeps the CUDA builds of the target with --gpu cuda', async () => {
    const modules = fakeTree(platformPackages);
    await run('bash', [script, '--gpu', 'cuda', 'amd64', modules]);
    expect(left(modules, '@node-llama-cpp')).toEqual(['linux-x64', 'linux-x64-cuda', 'linux-x64-cuda-ext']);
    expect(left(modules, '@fugood')).toEqual([
      'llama.node',
      'node-llama-linux-x64',
      'node-llama-linux-x64-cuda',
    ]);
  });

  it('removes nothing when the target CPU build is not installed (wrong ARCH)', async () => {
    const installed = ['@node-llama-cpp/linux-x64', '@fugood/llama.node', '@fugood/node-llama-linux-x64'];
    const modules = fakeTree(installed);
    await expect(run('bash', [script, 'aarch64', modules])).rejects.toMatchObject({ code: 1 });
    expect(left(modules, '@node-llama-cpp')).toEqual(['linux-x64']);
    await expect(run('bash', [script, 'sparc', modules])).rejects.toMatchObject({ code: 2 });
  });
});

describe('entry.sh', () => {
  const gatewayId = async (env: Record<string, string>) =>
    (
      await run('sh', [join(dir, 'entry.sh'), 'sh', '-c', 'printf %s "$OUTPOST_GATEWAY_ID"'], {
        env: { PATH: process.env.PATH, ...env },
      })
    ).stdout;

  it('names the gateway after the balena device unless OUTPOST_GATEWAY_ID says otherwise', async () => {
    expect(await gatewayId({ BALENA_DEVICE_UUID: 'a1b2c3' })).toBe('a1b2c3');
    expect(await gatewayId({ BALENA_DEVICE_UUID: 'a1b2c3', OUTPOST_GATEWAY_ID: 'barn' })).toBe('barn');
    expect(await gatewayId({})).toBe('');
  });
});

describe('healthcheck.mjs', () => {
  let server: Server;
  let status = 200;
  let port = 0;

  beforeAll(async () => {
    server = createServer((request, response) => {
      response.statusCode = request.url === '/healthz' ? status : 404;
      response.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  const check = (httpPort: number) =>
    run(process.execPath, [join(dir, 'healthcheck.mjs')], {
      env: { PATH: process.env.PATH, OUTPOST_HTTP_PORT: String(httpPort) },
    }).then(
      () => 0,
      (error: { code: number }) => error.code,
    );

  it('exits 0 when /healthz answers 200, 1 otherwise', async () => {
    status = 200;
    expect(await check(port)).toBe(0);
    status = 503;
    expect(await check(port)).toBe(1);
    expect(await check(await freePort())).toBe(1);
  });
});

describe('stage.sh', () => {
  let out: string | undefined;
  afterEach(() => {
    if (out) rmSync(out, { recursive: true, force: true });
  });

  it('assembles the push folder: compose file and balena.yml at its root, the repository below', async () => {
    out = mkdtempSync(join(tmpdir(), 'outpost-stage-'));
    await run('bash', [join(dir, 'stage.sh'), '--jetson', join(out, 'push')]);
    const push = join(out, 'push');
    expect(readFileSync(join(push, 'docker-compose.yml'), 'utf8')).toBe(read('docker-compose.jetson.yml'));
    expect(readFileSync(join(push, 'balena.yml'), 'utf8')).toBe(read('balena.yml'));
    for (const path of [
      'package.json',
      'package-lock.json',
      'src/cli/main.ts',
      'deploy/balena/Dockerfile.jetson',
    ]) {
      expect(existsSync(join(push, 'outpost', path)), path).toBe(true);
    }
    for (const path of ['node_modules', 'dist', '.git'])
      expect(existsSync(join(push, 'outpost', path))).toBe(false);
    await expect(run('bash', [join(dir, 'stage.sh'), push])).rejects.toMatchObject({ code: 1 });
  });
});

describe('mosquitto', () => {
  const lanListener = join(dir, 'mosquitto/lan-listener.sh');
  let work: string | undefined;
  afterEach(() => {
    if (work) rmSync(work, { recursive: true, force: true });
    work = undefined;
  });

  /** Runs lan-listener.sh without a command: it only writes conf.d, in a fresh folder. */
  const writeLanConf = async (env: Record<string, string>) => {
    const folder = mkdtempSync(join(tmpdir(), 'outpost-mosquitto-'));
    work = folder;
    const confD = join(folder, 'conf.d');
    await run('sh', [lanListener], { env: { PATH: process.env.PATH, MOSQUITTO_CONF_D: confD, ...env } });
    return { folder, confD };
  };

  it('opens no LAN listener unless told how clients log in', async () => {
    execFileSync('sh', ['-n', lanListener]);
    const closed = await writeLanConf({});
    expect(readdirSync(closed.confD)).toEqual([]);
    rmSync(closed.folder, { recursive: true });
    const { confD } = await writeLanConf({ MOSQUITTO_LAN_ANONYMOUS: 'true' });
    expect(readFileSync(join(confD, 'lan.conf'), 'utf8')).toBe('listener 1884\nallow_anonymous true\n');
  });

  it('serves outpost anonymously and the LAN only with the password (a real mosquitto)', async () => {
    const { folder, confD } = await writeLanConf({
      MOSQUITTO_LAN_USERNAME: 'sensor',
      MOSQUITTO_LAN_PASSWORD: 'hunter22',
    });
    const [internal, lan] = [await freePort(), await freePort()];
    writeFileSync(
      join(confD, 'lan.conf'),
      readFileSync(join(confD, 'lan.conf'), 'utf8').replace('listener 1884', `listener ${lan} 127.0.0.1`),
    );
    const conf = read('mosquitto/mosquitto.conf')
      .replace('listener 1883', `listener ${internal} 127.0.0.1`)
      .replaceAll('/mosquitto/config/conf.d', confD)
      .replaceAll('/mosquitto/data/', `${folder}/`)
      // As root, mosquitto would drop to the `mosquitto` user, who cannot read the temp folder.
      .concat(process.getuid?.() === 0 ? '\nuser root\n' : '\n');
    writeFileSync(join(folder, 'mosquitto.conf'), conf);
    const broker = execFile(MOSQUITTO, ['-c', join(folder, 'mosquitto.conf')]);
    try {
      const connect = async (port: number, login: { username?: string; password?: string } = {}) => {
        for (let attempt = 0; ; attempt++) {
          try {
            const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
              reconnectPeriod: 0,
              ...login,
            });
            await client.endAsync();
            return 'connected';
          } catch (error) {
            // Refused while mosquitto starts; an MQTT refusal (bad login) is final.
            if ((error as { code?: unknown }).code !== 'ECONNREFUSED' || attempt > 100) return 'refused';
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      };
      expect(await connect(internal)).toBe('connected');
      expect(await connect(lan, { username: 'sensor', password: 'hunter22' })).toBe('connected');
      expect(await connect(lan)).toBe('refused');
      expect(await connect(lan, { username: 'sensor', password: 'wrong' })).toBe('refused');
    } finally {
      broker.kill('SIGKILL');
    }
  });
});
