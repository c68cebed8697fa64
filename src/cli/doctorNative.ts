/**
 * `outpost doctor`'s runtime checks: the Node version package.json asks for, and the native modules loaded
 * the cheap way each allows (an in-memory SQLite with FTS5, a tiny image through sharp, llama.cpp's binding
 * without building it, llama.node's device list).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { CheckResult, StandaloneCheck } from './doctor.js';
import { firstLine } from './doctorChecks.js';

const require = createRequire(import.meta.url);
const platform = `${process.platform}-${process.arch}`;

/** Whether `version` satisfies an npm range made of `>=`, `>`, `<`, `<=`, `=` and `^` comparators and `||`. */
export function satisfies(version: string, range: string): boolean | undefined {
  const parse = (text: string) => text.split('.').map((n) => Number.parseInt(n, 10) || 0);
  const compare = (a: number[], b: number[]) => {
    for (let i = 0; i < 3; i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
    return 0;
  };
  const have = parse(version.replace(/^v/, ''));
  const alternatives = range.split('||').map((alternative) =>
    alternative
      .trim()
      .split(/\s+/)
      .map((comparator) => /^(>=|<=|>|<|=|\^)?v?(\d+(?:\.\d+){0,2})$/.exec(comparator)),
  );
  if (alternatives.some((a) => a.some((m) => m === null))) return undefined;
  return alternatives.some((alternative) =>
    alternative.every((match) => {
      const [, op = '=', text = ''] = match!;
      const c = compare(have, parse(text));
      if (op === '>=') return c >= 0;
      if (op === '>') return c > 0;
      if (op === '<=') return c <= 0;
      if (op === '<') return c < 0;
      if (op === '^') return c >= 0 && have[0] === parse(text)[0];
      return c === 0;
    }),
  );
}

export const nodeCheck: StandaloneCheck = {
  id: 'node',
  timeoutMs: 2000,
  timeoutFix: 'run `node --version` and reinstall Node if it hangs',
  async run() {
    // package.json sits two folders up from both src/cli/ and dist/cli/.
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      engines?: { node?: string };
    };
    const range = manifest.engines?.node;
    const version = process.versions.node;
    if (range === undefined)
      return { status: 'ok', message: `Node ${version} (package.json names no range)` };
    const fits = satisfies(version, range);
    if (fits === undefined) {
      return {
        status: 'warn',
        message: `Node ${version}; cannot read engines.node "${range}"`,
        fix: `check by hand that Node ${version} satisfies ${range}`,
      };
    }
    return fits
      ? { status: 'ok', message: `Node ${version} satisfies engines.node ${range}` }
      : {
          status: 'fail',
          message: `Node ${version} does not satisfy engines.node ${range}`,
          fix: `install Node ${range} (Node 20 LTS or later: NodeSource packages or \`nvm install 20\`), then reinstall the modules with \`npm ci\``,
        };
  },
};

const failed = (what: string, error: unknown, fix: string): CheckResult => ({
  status: 'fail',
  message: `${what} does not load: ${firstLine(error)}`,
  fix,
});

export const nativeChecks: StandaloneCheck[] = [
  {
    id: 'native.better-sqlite3',
    timeoutMs: 5000,
    timeoutFix: 'run `node -e "require(\'better-sqlite3\')"` to see where it hangs',
    async run() {
      const fix = `rebuild it for Node ${process.versions.node} on ${platform}: \`npm rebuild better-sqlite3\` (needs build-essential and python3 where no prebuilt binary fits)`;
      try {
        const { default: Database } = await import('better-sqlite3');
        const db = new Database(':memory:');
        try {
          const { version } = db.prepare('SELECT sqlite_version() AS version').get() as { version: string };
          db.exec('CREATE VIRTUAL TABLE probe USING fts5(text)');
          return { status: 'ok', message: `loads: SQLite ${version} with FTS5` };
        } finally {
          db.close();
        }
      } catch (error) {
        return failed('better-sqlite3', error, fix);
      }
    },
  },
  {
    id: 'native.sharp',
    timeoutMs: 5000,
    timeoutFix: 'run `node -e "require(\'sharp\')"` to see where it hangs',
    async run() {
      try {
        const { default: sharp } = await import('sharp');
        const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
          .jpeg()
          .toBuffer();
        await sharp(jpeg).resize(4, 4).png().toBuffer();
        return {
          status: 'ok',
          message: `loads: sharp ${sharp.versions.sharp}, libvips ${sharp.versions.vips}`,
        };
      } catch (error) {
        return failed(
          'sharp',
          error,
          `reinstall it with the prebuilt libvips of this board: \`npm install --os=${process.platform} --cpu=${process.arch} sharp\``,
        );
      }
    },
  },
  {
    id: 'native.node-llama-cpp',
    timeoutMs: 15_000,
    timeoutFix:
      'a GPU driver may hang while probed: set model.gpu to off (OUTPOST_MODEL_GPU=off) and try again',
    async run({ config }) {
      const gpu = config?.model.gpu === 'off' ? false : 'auto';
      try {
        const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
        // build 'never': a missing binding is reported, never compiled here.
        const llama = await getLlama({
          build: 'never',
          gpu,
          logLevel: LlamaLogLevel.error,
          progressLogs: false,
        });
        try {
          const backend = llama.gpu === false ? 'CPU only' : llama.gpu;
          const message = `loads: ${llama.buildType} llama.cpp binding, ${backend}`;
          if (llama.gpu === false && gpu === 'auto' && existsSync('/etc/nv_tegra_release')) {
            return {
              status: 'warn',
              message: `${message}, on a Jetson`,
              fix: 'install a CUDA build: `npx --no node-llama-cpp source download --gpu cuda`',
            };
          }
          return { status: 'ok', message };
        } finally {
          await llama.dispose();
        }
      } catch (error) {
        return failed(
          'the llama.cpp binding of node-llama-cpp',
          error,
          `reinstall node-llama-cpp so its prebuilt binary for ${platform} is there (\`npm ci\`), or build one: \`npx --no node-llama-cpp source download\``,
        );
      }
    },
  },
  {
    id: 'native.llama.node',
    timeoutMs: 10_000,
    timeoutFix: 'run `node -e "require(\'@fugood/llama.node\').getBackendDevicesInfo().then(console.log)"`',
    async run() {
      try {
        const llamaNode = require('@fugood/llama.node') as {
          getBackendDevicesInfo(): Promise<{ deviceName: string; type: string }[]>;
        };
        const devices = await llamaNode.getBackendDevicesInfo();
        return { status: 'ok', message: `loads: devices ${devices.map((d) => d.deviceName).join(', ')}` };
      } catch (error) {
        return failed(
          '@fugood/llama.node',
          error,
          `reinstall it so its platform package (@fugood/node-llama-${platform}) is there: \`npm ci --include=optional\``,
        );
      }
    },
  },
];
