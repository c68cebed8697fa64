/**
 * deploy/balena: the compose files, balena.yml and Dockerfiles read as balena would read them. No image is
 * built: there is no Docker engine here. The scripts they ship run in balenaScripts.test.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  argsOf,
  type Dockerfile,
  flagsOf,
  parseDockerfile,
  type Stage,
  seconds,
  stage,
} from './dockerfile.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = join(root, 'deploy/balena');
const read = (name: string) => readFileSync(join(dir, name), 'utf8');

interface ComposeService {
  build?: { context: string; dockerfile?: string };
  restart?: string;
  privileged?: boolean;
  devices?: string[];
  ports?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  labels?: Record<string, string>;
  healthcheck?: { test: string[]; interval: string; timeout: string; retries: number; start_period: string };
}
interface Compose {
  version: string;
  volumes: Record<string, unknown>;
  services: Record<string, ComposeService>;
}

/** Every OUTPOST_* variable the daemon accepts; it refuses unknown ones. */
const knownVariables = new Set(
  readFileSync(join(root, 'docs/configuration.md'), 'utf8').match(/OUTPOST_[A-Z_]+/g),
);
/** balena labels that break container isolation (docs.balena.io/reference/supervisor/docker-compose). */
const DANGEROUS_LABELS = [
  'io.balena.features.balena-socket',
  'io.balena.features.dbus',
  'io.balena.features.sysfs',
  'io.balena.features.procfs',
  'io.balena.features.kernel-modules',
  'io.balena.features.firmware',
  'io.balena.features.supervisor-api',
  'io.balena.features.balena-api',
];

describe.each(['docker-compose.yml', 'docker-compose.jetson.yml'])('%s', (file) => {
  const text = read(file);
  const compose = parse(text) as Compose;
  const outpost = compose.services.outpost!;
  const env = outpost.environment ?? {};

  it('is a 2.x compose file new enough for healthcheck.start_period, without variable substitution', () => {
    expect(compose.version).toMatch(/^2\.[34]$/);
    expect(text).not.toContain('${');
  });

  it('has the outpost and mosquitto services, always restarted', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['mosquitto', 'outpost']);
    for (const service of Object.values(compose.services)) expect(service.restart).toBe('always');
  });

  it('puts the data and the models on named volumes where the environment says they are', () => {
    expect(Object.keys(compose.volumes).sort()).toEqual(['mosquitto-data', 'outpost-data', 'outpost-models']);
    expect(outpost.volumes).toEqual(['outpost-data:/data', 'outpost-models:/models']);
    expect(env.OUTPOST_DATA_DIR).toBe('/data');
    expect(env.OUTPOST_MODEL_DIR).toBe('/models');
    expect(compose.services.mosquitto!.volumes).toEqual(['mosquitto-data:/mosquitto/data']);
  });

  it('connects to the mosquitto service and publishes the HTTP port it configures', () => {
    expect(env.OUTPOST_MQTT_URL).toBe('mqtt://mosquitto:1883');
    expect(outpost.ports).toEqual([`${env.OUTPOST_HTTP_PORT}:${env.OUTPOST_HTTP_PORT}`]);
    // A non-loopback host without a token is refused at start: the host follows the token instead.
    expect(env).not.toHaveProperty('OUTPOST_HTTP_HOST');
    expect(env).not.toHaveProperty('OUTPOST_HTTP_TOKEN');
    for (const name of Object.keys(env)) expect(knownVariables, name).toContain(name);
  });

  it('checks /healthz with a start period long enough for a model load', () => {
    const check = outpost.healthcheck!;
    expect(check.test).toEqual(['CMD', 'node', '/app/deploy/balena/healthcheck.mjs']);
    expect(read('healthcheck.mjs')).toContain("path: '/healthz'");
    expect(seconds(check.start_period)).toBeGreaterThanOrEqual(120);
    expect(seconds(check.timeout)).toBeLessThan(seconds(check.interval));
    expect(check.retries).toBeGreaterThanOrEqual(1);
  });

  it('reaches the microphone and sets no isolation-breaking label', () => {
    if (outpost.privileged) expect(file).toBe('docker-compose.jetson.yml');
    else expect(outpost.devices).toContain('/dev/snd:/dev/snd');
    for (const service of Object.values(compose.services)) {
      for (const label of DANGEROUS_LABELS) expect(service.labels ?? {}).not.toHaveProperty(label);
    }
  });

  it('builds from folders below the staged compose file that exist in the repository', () => {
    for (const service of Object.values(compose.services)) {
      const context = service.build!.context;
      expect(context).toMatch(/^\.\/outpost(\/|$)/);
      expect(context).not.toContain('..');
      // stage.sh copies the repository to outpost/
      const inRepo = join(root, context.replace(/^\.\/outpost/, ''));
      expect(existsSync(join(inRepo, service.build!.dockerfile ?? 'Dockerfile'))).toBe(true);
    }
  });
});

describe('balena.yml', () => {
  const meta = parse(read('balena.yml')) as {
    name: string;
    type: string;
    version: string;
    description: string;
    data: {
      defaultDeviceType: string;
      supportedDeviceTypes: string[];
      applicationEnvironmentVariables: Record<string, string>[];
    };
  };

  it('describes the application at the version of package.json', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(meta.type).toBe('sw.application');
    expect(meta.name).toBe('Outpost');
    expect(meta.description.length).toBeGreaterThan(20);
    expect(meta.version).toBe(pkg.version);
  });

  it('lists the boards, the default among them', () => {
    expect(meta.data.supportedDeviceTypes).toEqual(
      expect.arrayContaining([
        'raspberrypi5',
        'raspberrypi4-64',
        'jetson-orin-nano-devkit-nvme',
        'generic-amd64',
      ]),
    );
    expect(meta.data.supportedDeviceTypes).toContain(meta.data.defaultDeviceType);
  });

  it('offers only variables the daemon knows', () => {
    for (const entry of meta.data.applicationEnvironmentVariables) {
      for (const name of Object.keys(entry)) expect(knownVariables, name).toContain(name);
    }
  });
});

/** The runtime must not install a compiler: native modules are built in the build stage only. */
const TOOLCHAIN = /\b(g\+\+|gcc|make|python3|build-essential|cmake|nvcc)\b/;

function expectRuntime(file: Dockerfile, runtime: Stage) {
  expect(file.stages.at(-1)).toBe(runtime);
  for (const command of argsOf(runtime, 'RUN')) {
    for (const install of command.split('&&').filter((part) => /apt-get install/.test(part))) {
      expect(install).not.toMatch(TOOLCHAIN);
    }
  }
  const copies = argsOf(runtime, 'COPY');
  for (const path of ['/app/node_modules', '/app/dist', '/app/package.json']) {
    expect(
      copies.some((args) => args.startsWith('--from=build') && args.includes(path)),
      path,
    ).toBe(true);
  }
  const user = argsOf(runtime, 'USER');
  expect(user).toHaveLength(1);
  expect(user[0]).not.toMatch(/^(root|0)(:|$)/);
  const [healthcheck] = argsOf(runtime, 'HEALTHCHECK');
  expect(healthcheck).toContain('CMD ["node", "/app/deploy/balena/healthcheck.mjs"]');
  expect(seconds(flagsOf(healthcheck!)['start-period']!)).toBeGreaterThanOrEqual(120);
  expect(argsOf(runtime, 'CMD')).toEqual(['["node", "dist/cli/main.js", "start"]']);
  expect(argsOf(runtime, 'ENTRYPOINT')).toEqual(['["/bin/sh", "/app/deploy/balena/entry.sh"]']);
  const env = argsOf(runtime, 'ENV').join(' ');
  expect(env).toContain('OUTPOST_DATA_DIR=/data');
  expect(env).toContain('OUTPOST_MODEL_DIR=/models');
  for (const name of env.match(/OUTPOST_[A-Z_]+/g) ?? []) expect(knownVariables, name).toContain(name);
}

describe('Dockerfile.template', () => {
  const text = read('Dockerfile.template');
  const file = parseDockerfile(text);
  const build = stage(file, 'build');

  it('has a build and a runtime stage on Docker Official multi-arch images', () => {
    expect(file.stages.map((s) => s.name)).toEqual(['build', 'runtime']);
    // balena stopped publishing balenalib in 2025; official images are pulled for the fleet's arch.
    for (const s of file.stages) expect(s.from).toMatch(/^node:20-bookworm(-slim)?$/);
  });

  it('builds the native modules and the app in the build stage, then prunes for %%BALENA_ARCH%%', () => {
    const runs = argsOf(build, 'RUN').join('\n');
    expect(runs).toMatch(/apt-get install[^&]*python3[^&]*make[^&]*g\+\+/);
    expect(runs).toContain('npm ci --ignore-scripts');
    expect(runs).toContain('npm rebuild better-sqlite3');
    expect(runs).toContain('npm run build');
    expect(runs).toContain('npm prune --omit=dev');
    expect(argsOf(build, 'ARG')).toContain('BALENA_ARCH=%%BALENA_ARCH%%');
    expect(runs).toMatch(/prune-prebuilts\.sh --gpu none "\$arch" node_modules/);
    expect(runs.indexOf('npm prune')).toBeLessThan(runs.indexOf('prune-prebuilts.sh'));
  });

  it('runs the app without a toolchain, as an unprivileged user, with arecord', () => {
    const runtime = stage(file, 'runtime');
    expectRuntime(file, runtime);
    expect(argsOf(runtime, 'RUN').join('\n')).toMatch(/apt-get install[^&]*alsa-utils[^&]*ca-certificates/);
  });
});

describe('Dockerfile.jetson', () => {
  const file = parseDockerfile(read('Dockerfile.jetson'));
  const runtime = stage(file, 'runtime');

  it('is Ubuntu 22.04 with NVIDIA L4T r36 sources and the CUDA runtime the GPU builds link', () => {
    expect(stage(file, 'l4t').from).toBe('ubuntu:jammy');
    expect(runtime.from).toBe('l4t');
    expect(file.globalArgs.map((a) => a.args)).toEqual(expect.arrayContaining(['L4T=r36.4', 'CUDA=12-6']));
    const l4t = argsOf(stage(file, 'l4t'), 'RUN').join('\n');
    expect(l4t).toContain('https://repo.download.nvidia.com/jetson/common');
    expect(l4t).toContain('https://repo.download.nvidia.com/jetson/t234');
    const installs = argsOf(runtime, 'RUN').join('\n');
    for (const pkg of ['nvidia-l4t-cuda', 'cuda-cudart-$CUDA', 'libcublas-$CUDA', 'alsa-utils']) {
      expect(installs).toContain(pkg);
    }
    expect(argsOf(runtime, 'COPY')).toContain(
      '--from=nccl /usr/lib/aarch64-linux-gnu/libnccl.so.2* /usr/local/lib/',
    );
  });

  it('keeps the CUDA prebuilts when it prunes', () => {
    expect(argsOf(stage(file, 'build'), 'RUN').join('\n')).toContain(
      'prune-prebuilts.sh --gpu cuda aarch64 node_modules',
    );
  });

  it('runs the app like the other image', () => {
    expectRuntime(file, runtime);
  });
});
