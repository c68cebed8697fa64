import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCaptureDevices, parseHwDevice } from '../../src/cli/doctorMicrophone.js';
import { satisfies } from '../../src/cli/doctorNative.js';
import { writeTinyGemma3n } from '../fixtures/gguf/gemma3n.js';
import { writeTinyVisionProjector } from '../fixtures/gguf/visionProjector.js';
import { makeCertificates } from '../helpers/certificates.js';
import { freePort, type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';

const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;

interface Finding {
  id: string;
  status: 'ok' | 'warn' | 'fail';
  message: string;
  fix?: string;
  ms: number;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The real CLI as a child process, in an empty folder, with only PATH, HOME and `env` in its environment. */
function doctor(env: Record<string, string>, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', tsx, main, 'doctor', ...args],
      { cwd: root, timeout: 50_000, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function doctorJson(
  env: Record<string, string>,
): Promise<{ code: number; checks: Map<string, Finding> }> {
  const run = await doctor(env, '--json');
  expect(run.stderr).not.toMatch(/Error/);
  const report = JSON.parse(run.stdout) as { ok: boolean; checks: Finding[] };
  expect(report.ok).toBe(run.code === 0);
  return { code: run.code, checks: new Map(report.checks.map((f) => [f.id, f])) };
}

const IDS = [
  'config',
  'node',
  'native.better-sqlite3',
  'native.sharp',
  'native.node-llama-cpp',
  'native.llama.node',
  'data-dir',
  'disk',
  'model',
  'memory',
  'projector',
  'broker',
  'microphone',
  'clock',
  'ntp',
];

let root: string;
let mosquitto: Mosquitto;
let good: Record<string, string>;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'outpost-doctor-'));
  mkdirSync(join(root, 'data'));
  const model = await writeTinyGemma3n(join(root, 'tiny.gguf'), { size: 'small' });
  // A projector whose output width is the small model's (64).
  await writeTinyVisionProjector(join(root, 'mmproj-64.gguf'), { projectionDim: model.nEmbd });
  await writeTinyVisionProjector(join(root, 'mmproj-32.gguf'), { projectionDim: 32 });
  writeFileSync(join(root, 'a-file'), 'not a folder');
  mosquitto = await startMosquitto();
  good = {
    OUTPOST_DATA_DIR: join(root, 'data'),
    OUTPOST_MODEL: model.path,
    OUTPOST_MMPROJ: join(root, 'mmproj-64.gguf'),
    OUTPOST_MODEL_CONTEXT_SIZES: '[1024, 256]',
    OUTPOST_MQTT_URL: mosquitto.url,
  };
});

afterAll(async () => {
  await mosquitto?.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('outpost doctor', () => {
  it('passes a good setup: every check listed, none failing, the largest context named', async () => {
    const { code, checks } = await doctorJson(good);
    expect(code).toBe(0);
    expect([...checks.keys()]).toEqual(IDS);
    for (const id of IDS.filter((id) => id !== 'disk' && id !== 'ntp')) {
      expect(checks.get(id), id).toMatchObject({ status: 'ok' });
    }
    expect(checks.get('disk')?.status).not.toBe('fail');
    expect(checks.get('memory')?.message).toMatch(/largest that fits: tiny\.gguf@1024 needs/);
    expect(checks.get('projector')?.message).toMatch(/mmproj-64\.gguf \(image\) matches tiny\.gguf/);
    expect(checks.get('broker')?.message).toContain(`connected to ${mosquitto.url}`);
    expect(checks.get('data-dir')?.message).toContain('writable');
    for (const f of checks.values()) expect(f.ms).toBeLessThan(20_000);
  }, 60_000);

  it('prints a readable report by default, with the fix under a failure', async () => {
    const missing = join(root, 'missing.gguf');
    const run = await doctor({ ...good, OUTPOST_MODEL: missing });
    expect(run.code).toBe(1);
    expect(run.stdout).toMatch(new RegExp(`^FAIL {2}model +${missing}: no such file$`, 'm'));
    expect(run.stdout).toMatch(
      /^ +fix: copy the GGUF to .*set OUTPOST_MODEL to the path of the model file$/m,
    );
    expect(run.stdout).toMatch(/^ok {4}broker +connected/m);
    expect(run.stdout).toMatch(/failures?: fix the failures, then run `outpost doctor` again\n$/);
  }, 60_000);

  describe('fails bad setups with the failing check and its fix', () => {
    // Two runs, each with three independent faults: every check runs whatever the others found, so each
    // fault shows in its own check and nowhere else.
    let first: Awaited<ReturnType<typeof doctorJson>>;
    let second: Awaited<ReturnType<typeof doctorJson>>;
    beforeAll(async () => {
      const { OUTPOST_MQTT_URL: _url, ...embedded } = good;
      [first, second] = await Promise.all([
        doctorJson({
          ...good,
          OUTPOST_DATA_DIR: join(root, 'a-file', 'data'),
          OUTPOST_MQTT_URL: `mqtt://127.0.0.1:${await freePort()}`,
          // No sound card is a hardware fact of CI, not a mock: a device that is not there fails the same way.
          OUTPOST_AUDIO_MICROPHONE_ENABLED: 'true',
          OUTPOST_AUDIO_MICROPHONE_DEVICE: 'plughw:7,0',
        }),
        doctorJson({
          ...embedded,
          OUTPOST_MODEL_MEMORY_CAP: '1000',
          OUTPOST_MMPROJ: join(root, 'mmproj-32.gguf'),
          OUTPOST_BROKER_PORT: String(mosquitto.port),
        }),
      ]);
    }, 60_000);

    it('exits 1 and fails exactly the broken checks', () => {
      for (const run of [first, second]) {
        expect(run.code).toBe(1);
        expect([...run.checks.keys()]).toEqual(IDS);
      }
      const failing = (run: typeof first) =>
        [...run.checks.values()].filter((f) => f.status === 'fail').map((f) => f.id);
      expect(failing(first)).toEqual(['data-dir', 'broker', 'microphone']);
      expect(failing(second)).toEqual(['memory', 'projector', 'broker']);
    });

    const cases: [string, () => typeof first, string, RegExp, RegExp][] = [
      [
        'data folder under a file',
        () => first,
        'data-dir',
        /a-file is a file, not a folder/,
        /OUTPOST_DATA_DIR/,
      ],
      [
        'broker unreachable',
        () => first,
        'broker',
        /nothing listens at mqtt:\/\/127\.0\.0\.1:\d+ \(connection refused\)/,
        /start the broker .*OUTPOST_MQTT_URL/,
      ],
      [
        'microphone enabled with a missing device',
        () => first,
        'microphone',
        /no capture device|plughw:7,0 is not a capture device/,
        /OUTPOST_AUDIO_MICROPHONE_DEVICE/,
      ],
      [
        'memory cap too small',
        () => second,
        'memory',
        /nothing fits: the smallest, tiny\.gguf@256, needs .*model\.memoryCap/,
        /raise model\.memoryCap \(OUTPOST_MODEL_MEMORY_CAP\) to at least \d+/,
      ],
      [
        'projector of another model',
        () => second,
        'projector',
        /gives 32-wide embeddings but tiny\.gguf expects 64/,
        /OUTPOST_MMPROJ/,
      ],
      [
        'embedded broker port taken by another broker',
        () => second,
        'broker',
        /is taken by another MQTT broker/,
        /OUTPOST_MQTT_URL=mqtt:\/\/127\.0\.0\.1:\d+.*OUTPOST_BROKER_PORT/,
      ],
    ];

    it.each(cases)('%s', (_name, run, id, message, fix) => {
      const finding = run().checks.get(id)!;
      expect(finding.status).toBe('fail');
      expect(finding.message).toMatch(message);
      expect(finding.fix).toMatch(fix);
    });

    it('TLS and credentials: connects with the configured CA and account, names a refused one', async () => {
      const certs = join(root, 'tls');
      mkdirSync(certs);
      makeCertificates(certs);
      const secure = await startMosquitto({
        listener: [
          `cafile ${certs}/ca.crt`,
          `certfile ${certs}/server.crt`,
          `keyfile ${certs}/server.key`,
          `password_file ${certs}/passwd`,
          'allow_anonymous false',
        ],
      });
      try {
        const env = {
          ...good,
          OUTPOST_MQTT_URL: secure.url,
          OUTPOST_MQTT_CA: join(certs, 'ca.crt'),
          OUTPOST_MQTT_USERNAME: 'gateway',
          OUTPOST_MQTT_PASSWORD: 'correct-horse',
        };
        const ok = await doctorJson(env);
        expect(ok.code).toBe(0);
        expect(ok.checks.get('broker')?.message).toContain(`connected to ${secure.url} as gateway`);
        const refused = await doctorJson({ ...env, OUTPOST_MQTT_PASSWORD: 'wrong' });
        expect(refused.code).toBe(1);
        expect(refused.checks.get('broker')).toMatchObject({
          status: 'fail',
          message: expect.stringMatching(
            /refuses the credentials of gateway: Connection refused: Not authorized/,
          ),
          fix: expect.stringMatching(/OUTPOST_MQTT_USERNAME, OUTPOST_MQTT_PASSWORD/),
        });
      } finally {
        await secure.stop();
      }
    }, 60_000);

    it('an invalid configuration: the config check fails, the checks that need it say so', async () => {
      const { code, checks } = await doctorJson({ ...good, OUTPOST_HTTP_PORT: 'eighty' });
      expect(code).toBe(1);
      expect(checks.get('config')).toMatchObject({
        status: 'fail',
        message: expect.stringMatching(/OUTPOST_HTTP_PORT/),
      });
      expect(checks.get('model')).toMatchObject({
        status: 'warn',
        message: expect.stringMatching(/configuration is invalid/),
      });
      expect(checks.get('native.sharp')?.status).toBe('ok');
    }, 60_000);
  });
});

describe('doctor helpers', () => {
  it('reads npm engine ranges', () => {
    expect(satisfies('20.11.0', '>=20.11')).toBe(true);
    expect(satisfies('20.10.9', '>=20.11')).toBe(false);
    expect(satisfies('22.1.0', '^20.11 || >=22')).toBe(true);
    expect(satisfies('21.0.0', '^20.11 || >=22')).toBe(false);
    expect(satisfies('20.11.0', '20.x')).toBeUndefined();
  });

  it('reads the capture devices of `arecord -l` and ALSA hw names', () => {
    const listing =
      '**** List of CAPTURE Hardware Devices ****\n' +
      'card 1: Device [USB Audio Device], device 0: USB Audio [USB Audio]\n' +
      '  Subdevices: 1/1\n  Subdevice #0: subdevice #0\n';
    expect(parseCaptureDevices(listing)).toEqual([
      { card: 1, id: 'Device', name: 'USB Audio Device', device: 0 },
    ]);
    expect(parseHwDevice('plughw:1,0')).toEqual({ card: '1', device: 0 });
    expect(parseHwDevice('hw:CARD=Device,DEV=2')).toEqual({ card: 'Device', device: 2 });
    expect(parseHwDevice('default')).toBeUndefined();
  });
});
