import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import {
  buildJsonSchema,
  DOCS_PATH,
  renderDocs,
  SCHEMA_PATH,
  staleFiles,
} from '../../scripts/write-config-schema.js';
import { CONFIG_KEYS, type Config, ConfigError, loadConfig, printConfig } from '../../src/config/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tsxLoader = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const TOKEN = 't0ken-that-is-long-enough';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder holding `files` (path relative to it -> content). */
function tempDir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-config-'));
  dirs.push(dir);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

interface Case {
  yaml?: string;
  env?: Record<string, string>;
  file?: string;
  hostname?: string;
}

/** loadConfig in a temp folder whose outpost.yaml is `yaml` (none when absent). */
function load({ yaml, env = {}, file, hostname = 'gw-test' }: Case = {}): Config {
  const cwd = tempDir(yaml === undefined ? {} : { 'outpost.yaml': yaml });
  return loadConfig({ cwd, env, file, hostname });
}

/** The problem lines of the ConfigError that loading `c` throws. */
function problems(c: Case): readonly string[] {
  try {
    load(c);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error('the configuration was accepted');
}

describe('defaults', () => {
  it('works with no file and an empty environment', () => {
    const cwd = tempDir();
    const config = loadConfig({ cwd, env: {}, hostname: 'edge-01' });
    expect(config.dataDir).toBe(join(cwd, 'data'));
    expect(config.http.port).toBe(8080);
    expect(config.http.host).toBe('127.0.0.1');
    expect(config.http.token).toBeUndefined();
    expect(config.gatewayId).toBe('edge-01');
    expect(config.mqtt.clientId).toBe('outpost-edge-01');
    expect(config.mqtt.url).toBeUndefined();
    expect(config.mqtt.rejectUnauthorized).toBe(true);
    expect(config.broker).toMatchObject({ host: '127.0.0.1', port: 1883 });
    expect(config.ingest.routes).toEqual([
      { name: 'sensor-metric', filter: 'sensors/+/+', kind: 'sensor', maxBytes: 65536 },
      { name: 'sensor-device', filter: 'sensors/+', kind: 'sensor', maxBytes: 65536 },
      { name: 'camera-frame', filter: 'cameras/+/frame', kind: 'frame', maxBytes: 8 * 1024 * 1024 },
      { name: 'audio-clip', filter: 'audio/+/clip', kind: 'audio', maxBytes: 16 * 1024 * 1024 },
    ]);
    expect(config.audio).toMatchObject({
      maxSeconds: 120,
      segmentSeconds: 30,
      microphone: { enabled: false },
    });
    expect(config.frames).toMatchObject({ size: 512, fit: 'letterbox', gate: { mode: 'change' } });
    expect(config.model.runtime).toBe('auto');
    expect(config.log.level).toBe('info');
  });

  it.each(['my host!', '-.my host!', 'übergang/7', 'x'.repeat(100)])(
    'turns the hostname %j into a topic-safe gateway id',
    (hostname) => {
      const config = load({ hostname });
      expect(config.gatewayId).toMatch(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
      expect(config.mqtt.clientId).toBe(`outpost-${config.gatewayId}`);
    },
  );

  it('keeps the recognisable part of a sanitised hostname', () => {
    expect(load({ hostname: 'my host!' }).gatewayId).toMatch(/^my[-_.]host/);
  });
});

describe('environment variables', () => {
  it.each<[string, string, (config: Config) => unknown, unknown]>([
    ['OUTPOST_MQTT_URL', 'mqtts://broker.example:8883', (c) => c.mqtt.url, 'mqtts://broker.example:8883'],
    ['OUTPOST_DATA_DIR', '/var/lib/outpost', (c) => c.dataDir, '/var/lib/outpost'],
    ['OUTPOST_HTTP_PORT', '9000', (c) => c.http.port, 9000],
    ['OUTPOST_HTTP_TOKEN', TOKEN, (c) => c.http.token, TOKEN],
    ['OUTPOST_GATEWAY_ID', 'north-7', (c) => c.gatewayId, 'north-7'],
    ['OUTPOST_SENSORS_ANOMALY_THRESHOLD', '4.5', (c) => c.sensors.anomaly.threshold, 4.5],
    ['OUTPOST_MQTT_REJECT_UNAUTHORIZED', 'false', (c) => c.mqtt.rejectUnauthorized, false],
    ['OUTPOST_MQTT_REJECT_UNAUTHORIZED', 'off', (c) => c.mqtt.rejectUnauthorized, false],
    ['OUTPOST_LOG_LEVEL', 'debug', (c) => c.log.level, 'debug'],
    ['OUTPOST_BROKER_PORT', '11883', (c) => c.broker.port, 11883],
    ['OUTPOST_INFERENCE_TASK_TIMEOUTS_FRAME', '600', (c) => c.inference.taskTimeouts.frame, 600],
  ])('%s=%s is applied', (name, value, pick, expected) => {
    expect(pick(load({ env: { [name]: value } }))).toStrictEqual(expected);
  });

  it('a relative OUTPOST_DATA_DIR starts from cwd', () => {
    const cwd = tempDir();
    expect(loadConfig({ cwd, env: { OUTPOST_DATA_DIR: 'state' }, hostname: 'h' }).dataDir).toBe(
      join(cwd, 'state'),
    );
  });

  it('OUTPOST_HTTP_TOKEN makes the HTTP server listen beyond loopback', () => {
    expect(load({ env: { OUTPOST_HTTP_TOKEN: TOKEN } }).http.host).toBe('0.0.0.0');
    expect(load({ env: { OUTPOST_HTTP_TOKEN: TOKEN, OUTPOST_HTTP_HOST: '127.0.0.1' } }).http.host).toBe(
      '127.0.0.1',
    );
  });

  it('OUTPOST_GATEWAY_ID also names the MQTT client', () => {
    expect(load({ env: { OUTPOST_GATEWAY_ID: 'north-7' } }).mqtt.clientId).toBe('outpost-north-7');
  });

  it('OUTPOST_INGEST_ROUTES takes a JSON array, with route defaults applied', () => {
    const routes = [{ name: 'pumps', filter: 'plant/pumps/+/+', kind: 'sensor' }];
    const config = load({ env: { OUTPOST_INGEST_ROUTES: JSON.stringify(routes) } });
    expect(config.ingest.routes).toEqual([{ ...routes[0], maxBytes: 65536 }]);
  });

  it('inference.taskTimeouts: per task from the file and OUTPOST_INFERENCE_TASK_TIMEOUTS_<TASK>, none by default', () => {
    expect(load().inference.taskTimeouts).toEqual({});
    expect(load().inference.jobTimeout).toBe(180);
    const yaml = 'inference:\n  jobTimeout: 60\n  taskTimeouts:\n    frame: 300\n    audio: 240\n';
    const config = load({
      yaml,
      env: { OUTPOST_INFERENCE_TASK_TIMEOUTS_AUDIO: '420', OUTPOST_INFERENCE_TASK_TIMEOUTS_EXPLAIN: '20' },
    });
    // The variable overrides its own task only; tasks without a limit of their own take jobTimeout.
    expect(config.inference.taskTimeouts).toEqual({ frame: 300, audio: 420, explain: 20 });
    expect(config.inference.jobTimeout).toBe(60);

    expect(problems({ yaml: 'inference:\n  taskTimeouts:\n    frames: 300\n' })).toEqual([
      'outpost.yaml: inference.taskTimeouts.frames: unknown key (did you mean frame?)',
    ]);
    expect(problems({ env: { OUTPOST_INFERENCE_TASK_TIMEOUTS_DIGEST: '0' } })).toEqual([
      expect.stringMatching(/^OUTPOST_INFERENCE_TASK_TIMEOUTS_DIGEST: .*, found 0$/),
    ]);
    // Like every section of fixed keys (sensors.anomaly), it is set key by key, not as one JSON variable:
    // the whole-section name is refused, never silently ignored.
    for (const name of ['OUTPOST_INFERENCE_TASK_TIMEOUTS', 'OUTPOST_INFERENCE_TASKTIMEOUTS']) {
      expect(problems({ env: { [name]: '{"frame":300}' } })).toEqual([
        expect.stringMatching(new RegExp(`^${name}: unknown setting`)),
      ]);
    }
  });

  it('ignores variables outside OUTPOST_* and accepts OUTPOST_CONFIG', () => {
    const cwd = tempDir({ 'gw.yaml': 'http:\n  port: 9001\n' });
    const env = { HOME: '/root', HTTP_PORT: '1', OUTPOST_CONFIG: 'gw.yaml' };
    expect(loadConfig({ cwd, env, hostname: 'h' }).http.port).toBe(9001);
  });
});

describe('file and precedence', () => {
  const yaml = 'http:\n  port: 9000\nlog:\n  level: debug\nsensors:\n  anomaly:\n    warmup: 50\n';

  it('the file overrides defaults and keeps the other defaults', () => {
    const config = load({ yaml });
    expect(config.http.port).toBe(9000);
    expect(config.log.level).toBe('debug');
    expect(config.sensors.anomaly.warmup).toBe(50);
    expect(config.sensors.anomaly.window).toBe(60);
    expect(config.broker.port).toBe(1883);
  });

  it('the environment overrides the file, key by key', () => {
    const config = load({ yaml, env: { OUTPOST_HTTP_PORT: '9100', OUTPOST_SENSORS_ANOMALY_WINDOW: '30' } });
    expect(config.http.port).toBe(9100);
    expect(config.log.level).toBe('debug');
    expect(config.sensors.anomaly).toMatchObject({ warmup: 50, window: 30 });
  });

  it('an empty file means defaults', () => {
    expect(load({ yaml: '# nothing here\n' }).http.port).toBe(8080);
  });

  it('OUTPOST_CONFIG selects the file instead of ./outpost.yaml', () => {
    const cwd = tempDir({ 'outpost.yaml': 'http:\n  port: 1111\n', 'conf/gw.yaml': 'http:\n  port: 2222\n' });
    expect(loadConfig({ cwd, env: { OUTPOST_CONFIG: 'conf/gw.yaml' }, hostname: 'h' }).http.port).toBe(2222);
  });

  it('the file option wins over OUTPOST_CONFIG and may be absolute', () => {
    const cwd = tempDir({ 'a.yaml': 'http:\n  port: 1111\n', 'b.yaml': 'http:\n  port: 2222\n' });
    const env = { OUTPOST_CONFIG: 'a.yaml' };
    expect(loadConfig({ cwd, env, file: 'b.yaml', hostname: 'h' }).http.port).toBe(2222);
    expect(loadConfig({ cwd: tmpdir(), env, file: join(cwd, 'b.yaml'), hostname: 'h' }).http.port).toBe(2222);
  });

  it('an explicitly named file that is missing is an error', () => {
    expect(problems({ file: 'missing.yaml' })).toEqual(['missing.yaml: no such file']);
    expect(problems({ env: { OUTPOST_CONFIG: 'gone.yaml' } })).toEqual(['gone.yaml: no such file']);
  });

  it('problems name the file they come from', () => {
    const cwd = tempDir({ 'conf/gw.yaml': 'http:\n  port: abc\n' });
    expect(() => loadConfig({ cwd, env: {}, file: 'conf/gw.yaml', hostname: 'h' })).toThrow(
      /conf\/gw\.yaml: http\.port/,
    );
  });
});

describe('empty sections', () => {
  it('reads a section with nothing under it as empty, with its defaults', () => {
    const config = load({ yaml: 'http:\nmqtt:\n  url: mqtt://broker.local:1883\n' });
    expect(config.http.port).toBe(8080);
    expect(config.mqtt.url).toBe('mqtt://broker.local:1883');
  });
});

describe('errors', () => {
  it('a bad file value says where, what was expected and what was found', () => {
    const [line, ...rest] = problems({ yaml: 'http:\n  port: abc\n' });
    expect(rest).toEqual([]);
    expect(line).toMatch(/^outpost\.yaml: http\.port: .*number.*, found "abc"$/);
  });

  it('a value out of range says so', () => {
    expect(problems({ yaml: 'http:\n  port: 70000\n' })).toEqual([
      expect.stringMatching(/^outpost\.yaml: http\.port: .*65535.*found 70000$/),
    ]);
  });

  it.each([
    ['OUTPOST_HTTP_PORT', 'abc', /^OUTPOST_HTTP_PORT: expected a number, found "abc"$/],
    ['OUTPOST_HTTP_PORT', '70000', /^OUTPOST_HTTP_PORT: .*65535.*found 70000$/],
    ['OUTPOST_MQTT_REJECT_UNAUTHORIZED', 'maybe', /^OUTPOST_MQTT_REJECT_UNAUTHORIZED: expected a boolean/],
    ['OUTPOST_INGEST_ROUTES', '[{', /^OUTPOST_INGEST_ROUTES: expected JSON, found "\[\{"$/],
    ['OUTPOST_INGEST_ROUTES', '{"name":"a"}', /^OUTPOST_INGEST_ROUTES: expected array/],
    ['OUTPOST_MQTT_URL', 'http://broker', /^OUTPOST_MQTT_URL: .*mqtt:\/\/.*found "http:\/\/broker"$/],
    ['OUTPOST_GATEWAY_ID', 'a/b', /^OUTPOST_GATEWAY_ID: .*found "a\/b"$/],
  ])('%s=%s names the variable', (name, value, pattern) => {
    expect(problems({ env: { [name]: value } })).toEqual([expect.stringMatching(pattern)]);
  });

  it('reports every problem at once, one line each', () => {
    const yaml = 'log:\n  level: loud\nmqtt:\n  url: http://x\nhttp:\n  port: abc\n';
    let error: unknown;
    try {
      load({ yaml });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const { problems: lines, message } = error as ConfigError;
    expect(lines).toHaveLength(3);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^outpost\.yaml: log\.level: .*found "loud"$/),
        expect.stringMatching(/^outpost\.yaml: mqtt\.url: .*found "http:\/\/x"$/),
        expect.stringMatching(/^outpost\.yaml: http\.port: .*found "abc"$/),
      ]),
    );
    for (const line of lines) expect(message.split('\n')).toContain(`  ${line}`);
  });

  it('an unknown key in the file gets a did-you-mean hint, each on its own line', () => {
    const yaml = 'htpp:\n  port: 1\nmqqt: {}\nhttp:\n  prot: 2\nsensors:\n  anomaly:\n    treshold: 3\n';
    const lines = problems({ yaml });
    expect(lines).toHaveLength(4);
    expect(lines).toEqual(
      expect.arrayContaining([
        'outpost.yaml: htpp: unknown key (did you mean http?)',
        'outpost.yaml: mqqt: unknown key (did you mean mqtt?)',
        'outpost.yaml: http.prot: unknown key (did you mean port?)',
        'outpost.yaml: sensors.anomaly.treshold: unknown key (did you mean threshold?)',
      ]),
    );
  });

  it('a key nothing resembles is unknown without a hint', () => {
    expect(problems({ yaml: 'camera:\n  fps: 30\n' })).toEqual(['outpost.yaml: camera: unknown key']);
  });

  it('an unknown key inside an environment value is blamed on the variable, not the file', () => {
    const routes = [{ name: 'a', filter: 'x/+', kind: 'sensor', maxbytes: 5 }];
    const lines = problems({ env: { OUTPOST_INGEST_ROUTES: JSON.stringify(routes) } });
    expect(lines).toEqual([
      expect.stringMatching(/^OUTPOST_INGEST_ROUTES: ingest\.routes\.0\.maxbytes: unknown key/),
    ]);
  });

  it('an unknown OUTPOST_* variable is an error with a hint', () => {
    expect(problems({ env: { OUTPOST_HTTP_PROT: '8081' } })).toEqual([
      'OUTPOST_HTTP_PROT: unknown setting (did you mean OUTPOST_HTTP_PORT?)',
    ]);
    expect(problems({ env: { OUTPOST_MQTT_CLIENTID: 'x' } })).toEqual([
      'OUTPOST_MQTT_CLIENTID: unknown setting (did you mean OUTPOST_MQTT_CLIENT_ID?)',
    ]);
  });

  it('invalid YAML is reported as such', () => {
    expect(problems({ yaml: 'http:\n  port: [1, 2\n' })).toEqual([
      expect.stringMatching(/^outpost\.yaml: not valid YAML: ./),
    ]);
  });

  it.each([
    ['- http\n- mqtt\n', 'a list'],
    ['just words\n', 'a string'],
  ])('a top level that is not a mapping is refused: %j', (yaml, kind) => {
    expect(problems({ yaml })).toEqual([`outpost.yaml: expected a mapping of sections, found ${kind}`]);
  });

  it('never echoes a secret', () => {
    const fromFile = problems({ yaml: 'http:\n  token: hunter2\nmqtt:\n  password: 424242\n' });
    expect(fromFile).toHaveLength(2);
    expect(fromFile).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^outpost\.yaml: http\.token: .*16 characters.*\(secret\)$/),
        expect.stringMatching(/^outpost\.yaml: mqtt\.password: .*\(secret\)$/),
      ]),
    );
    expect(fromFile.join('\n')).not.toMatch(/hunter2|424242/);

    const fromEnv = problems({ env: { OUTPOST_HTTP_TOKEN: 'hunter2' } });
    expect(fromEnv).toEqual([expect.stringMatching(/^OUTPOST_HTTP_TOKEN: .*\(secret\)$/)]);
    expect(fromEnv.join('\n')).not.toContain('hunter2');
  });
});

describe('cross checks', () => {
  it('refuses an HTTP server beyond loopback without a token', () => {
    expect(problems({ yaml: 'http:\n  host: 0.0.0.0\n' })).toEqual([
      expect.stringMatching(/^http\.host: 0\.0\.0\.0 is beyond loopback; set http\.token/),
    ]);
    expect(load({ yaml: `http:\n  host: 0.0.0.0\n  token: ${TOKEN}\n` }).http.host).toBe('0.0.0.0');
    expect(load({ yaml: 'http:\n  host: localhost\n' }).http.host).toBe('localhost');
  });

  it('refuses an embedded broker beyond loopback without credentials', () => {
    const pattern =
      /^broker\.host: .*0\.0\.0\.0 is beyond loopback; set broker\.username and broker\.password/;
    expect(problems({ env: { OUTPOST_BROKER_HOST: '0.0.0.0' } })).toEqual([expect.stringMatching(pattern)]);
    expect(problems({ env: { OUTPOST_BROKER_HOST: '0.0.0.0', OUTPOST_BROKER_USERNAME: 'gw' } })).toEqual([
      expect.stringMatching(pattern),
    ]);
  });

  it('allows an embedded broker beyond loopback with credentials', () => {
    const env = {
      OUTPOST_BROKER_HOST: '0.0.0.0',
      OUTPOST_BROKER_USERNAME: 'gw',
      OUTPOST_BROKER_PASSWORD: 'pw',
    };
    expect(load({ env }).broker.host).toBe('0.0.0.0');
  });

  it('ignores broker.host when an external broker is used', () => {
    const env = { OUTPOST_BROKER_HOST: '0.0.0.0', OUTPOST_MQTT_URL: 'mqtt://broker.local:1883' };
    expect(load({ env }).mqtt.url).toBe('mqtt://broker.local:1883');
  });

  it('refuses duplicate route names', () => {
    const yaml = [
      'ingest:',
      '  routes:',
      '    - { name: pumps, filter: a/+/+, kind: sensor }',
      '    - { name: pumps, filter: b/+/+, kind: sensor }',
    ].join('\n');
    expect(problems({ yaml })).toEqual([expect.stringMatching(/route name "pumps" is used twice/)]);
  });

  it('refuses a sensor route without a wildcard', () => {
    const yaml = 'ingest:\n  routes:\n    - { name: temp, filter: sensors/temp, kind: sensor }\n';
    expect(problems({ yaml })).toEqual([
      expect.stringMatching(/^ingest\.routes\.temp\.filter: a sensor route captures the device/),
    ]);
  });

  it('refuses a frame route that does not capture exactly one camera, or a camera name that is a path', () => {
    const yaml = 'ingest:\n  routes:\n    - { name: cams, filter: cameras/+/+/frame, kind: frame }\n';
    expect(problems({ yaml })).toEqual([
      expect.stringMatching(
        /^ingest\.routes\.cams\.filter: a frame route captures the camera with exactly one/,
      ),
    ]);
    expect(problems({ yaml: 'frames:\n  cameras:\n    "../etc": { mode: "off" }\n' })).toEqual([
      expect.stringMatching(/frames\.cameras.*camera name/),
    ]);
    const badSchema = JSON.stringify([
      {
        name: 'cams',
        filter: 'cameras/+/frame',
        kind: 'frame',
        tasks: { frame: { schema: { type: 'object', properties: { n: { type: 'strnig' } } } } },
      },
    ]);
    expect(problems({ env: { OUTPOST_INGEST_ROUTES: badSchema } })).toEqual([
      'ingest.routes.cams.tasks.frame.schema: llama.cpp cannot turn it into a grammar: unknown type "strnig" at #/properties/n',
    ]);
    expect(problems({ env: { OUTPOST_FRAMES_SIZE: '300' } })).toEqual([
      expect.stringMatching(/^OUTPOST_FRAMES_SIZE/),
    ]);
  });
});

it('the configuration is deeply frozen', () => {
  const config = load();
  for (const part of [config, config.http, config.mqtt, config.sensors.anomaly, config.ingest.routes]) {
    expect(Object.isFrozen(part)).toBe(true);
  }
  expect(() => {
    (config.http as { port: number }).port = 1;
  }).toThrow(TypeError);
  expect(() => {
    (config.ingest.routes as unknown as unknown[]).push({});
  }).toThrow(TypeError);
  expect(() => {
    (config.ingest.routes[0] as { filter: string }).filter = '#';
  }).toThrow(TypeError);
});

describe('printConfig', () => {
  it('prints the effective configuration as YAML with secrets masked', () => {
    const env = {
      OUTPOST_HTTP_TOKEN: TOKEN,
      OUTPOST_MQTT_URL: 'mqtts://broker.local:8883',
      OUTPOST_MQTT_USERNAME: 'gateway',
      OUTPOST_MQTT_PASSWORD: 'mqtt-secret',
      OUTPOST_BROKER_PASSWORD: 'broker-secret',
      OUTPOST_HTTP_PORT: '9000',
    };
    const text = printConfig(load({ env }));
    for (const secret of [TOKEN, 'mqtt-secret', 'broker-secret']) expect(text).not.toContain(secret);
    const printed = parseYaml(text) as {
      http: Record<string, unknown>;
      mqtt: Record<string, unknown>;
      broker: Record<string, unknown>;
      gatewayId: string;
    };
    expect(printed.http).toEqual({ host: '0.0.0.0', port: 9000, rateLimit: 600, token: '********' });
    expect(printed.mqtt).toMatchObject({
      url: 'mqtts://broker.local:8883',
      username: 'gateway',
      password: '********',
      clientId: 'outpost-gw-test',
    });
    expect(printed.broker.password).toBe('********');
    expect(printed.gatewayId).toBe('gw-test');
  });

  it('does not invent secrets that are not set', () => {
    const text = printConfig(load());
    expect(text).not.toContain('********');
    expect((parseYaml(text) as { http: Record<string, unknown> }).http).not.toHaveProperty('token');
  });
});

describe('CONFIG_KEYS', () => {
  it('gives every leaf a unique OUTPOST_* variable and a description', () => {
    const names = CONFIG_KEYS.map((k) => k.env);
    expect(new Set(names).size).toBe(names.length);
    for (const key of CONFIG_KEYS) {
      expect(key.env).toMatch(/^OUTPOST_[A-Z0-9_]+$/);
      expect(key.description, key.path.join('.')).not.toBe('');
    }
  });

  it('holds the documented variables and marks exactly the secrets', () => {
    const names = CONFIG_KEYS.map((k) => k.env);
    expect(names).toEqual(
      expect.arrayContaining([
        'OUTPOST_MQTT_URL',
        'OUTPOST_DATA_DIR',
        'OUTPOST_HTTP_PORT',
        'OUTPOST_HTTP_TOKEN',
        'OUTPOST_GATEWAY_ID',
        'OUTPOST_SENSORS_ANOMALY_THRESHOLD',
        'OUTPOST_MQTT_REJECT_UNAUTHORIZED',
        'OUTPOST_INGEST_ROUTES',
      ]),
    );
    expect(
      CONFIG_KEYS.filter((k) => k.secret)
        .map((k) => k.path.join('.'))
        .sort(),
    ).toEqual(['broker.password', 'http.token', 'mqtt.password', 'uplink.password']);
  });
});

/** A YAML config that sets something in every section. */
const FULL_YAML = `
gatewayId: north-7
dataDir: /var/lib/outpost
log:
  level: debug
  format: json
mqtt:
  url: mqtts://broker.local:8883
  clientId: outpost-north
  username: gateway
  password: mqtt-secret
  ca: /etc/outpost/ca.pem
  cert: /etc/outpost/client.pem
  key: /etc/outpost/client.key
  rejectUnauthorized: false
  keepalive: 20
  reconnectMin: 2
  reconnectMax: 60
  topicPrefix: plant
broker:
  host: 0.0.0.0
  port: 11883
  username: local
  password: broker-secret
ingest:
  routes:
    - name: pumps
      filter: plant/pumps/+/+
      kind: sensor
      maxBytes: 4096
      tasks:
        explain:
          prompt: 'Explain this pump reading: {{input}}'
          schema: { type: object, properties: { summary: { type: string, maxLength: 80 } } }
    - name: shed-audio
      filter: plant/audio/+
      kind: audio
      tasks:
        audio:
          prompt: 'Transcribe the radio call: {{input}}'
    - name: gates
      filter: plant/gates/+/jpeg
      kind: frame
      maxBytes: 2097152
      tasks:
        frame:
          prompt: 'Is the gate open? {{input}}'
  duplicateWindow: 300
sensors:
  window: 30
  maxFuture: 3600
  minTimestamp: 2020-01-01T00:00:00Z
  maxSeries: 100
  anomaly:
    window: 30
    threshold: 5
    warmup: 10
    cooldown: 120
frames:
  size: 768
  fit: crop
  thumbnailSize: 240
  jpegQuality: 80
  maxPixels: 12000000
  maxCameras: 8
  gate:
    mode: change
    threshold: 0.05
    minInterval: 2
    cooldown: 30
  cameras:
    gate-north:
      mode: 'off'
      minInterval: 5
      prompt: 'Count the vehicles at the north gate.'
audio:
  maxSeconds: 60
  maxChannels: 2
  maxSources: 16
  segmentSeconds: 20
  padMs: 250
  maxWaiting: 10
  language: de
  microphone:
    enabled: true
    source: shed-mic
    device: plughw:1,0
    recorder: sox
    gain: 6
    segmentSeconds: 20
store:
  synchronous: full
  batchSize: 100
  journalKeep: 600
  readingsDays: 7
  eventsDays: 90
  mediaDays: 14
  mediaMaxBytes: 536870912
outbox:
  maxMessages: 1000
  maxBytes: 1048576
  hardMaxMessages: 5000
  hardMaxBytes: 4194304
  maxAge: 3600
  inflight: 5
  policy:
    results: keep
    events: keep
    windows: overwrite-oldest
    errors: keep
uplink:
  url: mqtts://fleet.example:8883
  clientId: gw-7-uplink
  username: gw-7
  password: fleet-secret
  ca: ca.pem
  rejectUnauthorized: true
  protocolVersion: 4
  keepalive: 60
  reconnectMin: 2
  reconnectMax: 60
  topicPrefix: fleet
  forward: [results, events, windows]
  outbox:
    maxMessages: 500
    hardMaxBytes: 8388608
    inflight: 4
http:
  host: 0.0.0.0
  port: 9000
  token: ${TOKEN}
homeassistant:
  enabled: false
  prefix: ha
health:
  interval: 10
model:
  name: gemma-3n-e2b-q4_k_m
  runtime: llama.node
  mmproj: /models/mmproj.gguf
  variants: [/models/gemma-3n-E4B-it-Q4_K_M.gguf]
  dir: /var/lib/outpost/models
  autoPull: true
  contextSizes: [2048, 1024]
  threads: 4
  gpu: off
  maxTokens: 200
  memoryCap: 3221225472
  reserve: 134217728
  upHold: 120
inference:
  enabled: true
  jobTimeout: 60
  taskTimeouts:
    explain: 30
    frame: 240
    audio: 300
  maxAttempts: 2
  modelRetry: 5
  digestInterval: 1800
`;

interface SchemaNode {
  type?: string;
  enum?: unknown[];
  properties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  'x-env'?: string;
  'x-secret'?: boolean;
}

/** Paths in `value` that the editor schema would flag: unknown keys and wrong types. */
function schemaMismatches(value: unknown, node: SchemaNode, path = ''): string[] {
  const where = path || '(top level)';
  if (node.enum && !node.enum.includes(value)) return [`${where}: not one of the enum`];
  switch (node.type) {
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        return [`${where}: not an object`];
      return Object.entries(value).flatMap(([key, child]) => {
        const childNode = node.properties?.[key];
        const childPath = path ? `${path}.${key}` : key;
        if (childNode) return schemaMismatches(child, childNode, childPath);
        // a free-form map (a JSON schema given in the config) takes any key
        if (typeof node.additionalProperties === 'object') return [];
        return [`${childPath}: unknown`];
      });
    }
    case 'array':
      if (!Array.isArray(value)) return [`${where}: not an array`];
      return value.flatMap((item, i) =>
        node.items ? schemaMismatches(item, node.items, `${path}.${i}`) : [],
      );
    case 'integer':
      return Number.isInteger(value) ? [] : [`${where}: not an integer`];
    case 'number':
    case 'string':
    case 'boolean':
      return typeof value === node.type ? [] : [`${where}: not a ${node.type}`];
    default:
      return [];
  }
}

describe('generated schema and docs', () => {
  it('are up to date (npm run schema:check exits 0)', async () => {
    expect(staleFiles(root)).toEqual([]);
    const { code, stderr } = await run(
      process.execPath,
      ['--import', tsxLoader, 'scripts/write-config-schema.ts', '--check'],
      root,
      { PATH: process.env.PATH ?? '' },
    );
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });

  it('--check notices a missing or edited file', () => {
    const dir = tempDir({ [DOCS_PATH]: renderDocs() });
    expect(staleFiles(dir)).toEqual([SCHEMA_PATH]);
    writeFileSync(join(dir, DOCS_PATH), `${renderDocs()}\nhand edit\n`);
    expect(staleFiles(dir)).toEqual([SCHEMA_PATH, DOCS_PATH]);
  });

  it('the schema names each key’s variable and marks secrets', () => {
    const schema = JSON.parse(readFileSync(join(root, SCHEMA_PATH), 'utf8')) as SchemaNode & {
      $id?: string;
      title?: string;
    };
    expect(schema.$id).toBeTruthy();
    expect(schema.title).toBeTruthy();
    for (const key of CONFIG_KEYS) {
      let node: SchemaNode | undefined = schema;
      for (const part of key.path) node = node?.properties?.[part];
      expect(node?.['x-env'], key.path.join('.')).toBe(key.env);
      expect(node?.['x-secret'] === true, key.path.join('.')).toBe(key.secret);
    }
  });

  it('a config using every section loads and matches the editor schema', () => {
    const sections = new Set(CONFIG_KEYS.map((k) => k.path[0]));
    const doc = parseYaml(FULL_YAML) as Record<string, unknown>;
    expect(new Set(Object.keys(doc))).toEqual(sections);

    const config = load({ yaml: FULL_YAML });
    expect(config).toMatchObject({
      gatewayId: 'north-7',
      log: { format: 'json' },
      store: { synchronous: 'full' },
    });
    expect(config.sensors.anomaly.cooldown).toBe(120);
    expect(config.frames.cameras['gate-north']).toEqual({
      mode: 'off',
      minInterval: 5,
      prompt: 'Count the vehicles at the north gate.',
    });

    expect(schemaMismatches(doc, buildJsonSchema() as SchemaNode)).toEqual([]);
    // The checker itself notices a typo.
    expect(schemaMismatches({ ...doc, htpp: {} }, buildJsonSchema() as SchemaNode)).toEqual([
      'htpp: unknown',
    ]);
  });

  it('the docs list every key with its variable', () => {
    const docs = readFileSync(join(root, DOCS_PATH), 'utf8');
    for (const key of CONFIG_KEYS) expect(docs).toContain(`| \`${key.path.join('.')}\``);
    for (const key of CONFIG_KEYS) expect(docs).toContain(`\`${key.env}\``);
  });
});

/** Runs a command to its end. */
function run(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('outpost start --print-config', () => {
  const cli = (env: Record<string, string>) =>
    run(
      process.execPath,
      ['--import', tsxLoader, join(root, 'src/cli/main.ts'), 'start', '--print-config'],
      tempDir(),
      {
        PATH: process.env.PATH ?? '',
        ...env,
      },
    );

  it('prints the effective configuration with the token masked', async () => {
    const token = 'x'.repeat(20);
    const { code, stdout, stderr } = await cli({
      OUTPOST_HTTP_TOKEN: token,
      OUTPOST_MQTT_URL: 'mqtt://broker.local:1883',
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toContain('mqtt://broker.local:1883');
    expect(stdout).not.toContain(token);
    const printed = parseYaml(stdout) as { http: { token: string; host: string }; mqtt: { url: string } };
    expect(printed.http).toMatchObject({ token: '********', host: '0.0.0.0' });
    expect(printed.mqtt.url).toBe('mqtt://broker.local:1883');
  });

  it('exits 2 and names the variable of a bad setting', async () => {
    const { code, stdout, stderr } = await cli({ OUTPOST_HTTP_PORT: 'abc' });
    expect(code).toBe(2);
    expect(stderr).toContain('OUTPOST_HTTP_PORT');
    expect(stderr).toContain('"abc"');
    expect(stdout).toBe('');
  });
});
