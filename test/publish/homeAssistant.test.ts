import { spawnSync } from 'node:child_process';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../src/ingest/index.js';
import {
  anomalyTemplate,
  type DiscoveryStore,
  discoveryConfigs,
  HomeAssistantDiscovery,
  type KnownSources,
  TEMPLATES,
} from '../../src/publish/homeAssistant.js';
import { wireTopics } from '../../src/publish/topics.js';
import { waitFor } from '../helpers/wait.js';

const GW = 'gw-ha';
const topics = wireTopics('outpost', GW);
const logger = createLogger({ level: 'silent', format: 'json' });
const DISCOVERY = /^homeassistant\/(sensor|binary_sensor)\/outpost_gw-ha\/[A-Za-z0-9_-]+\/config$/;
/** Home Assistant's entity id check (homeassistant/core.py valid_entity_id). */
const ENTITY_ID = /^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$/;

// ---------------------------------------------------------------------------------------------------------
// Templates are checked by rendering them. A small evaluator of the Jinja subset the templates use runs
// always; where python3 with jinja2 is installed, real Jinja (the sandboxed environment Home Assistant
// builds on) renders the same cases and must agree, so the subset cannot drift from Jinja's semantics.
// ---------------------------------------------------------------------------------------------------------

const UNDEF = Symbol('undefined');
/** A Python float (true division and round return one; it renders as `12.0`, not `12`). */
class PyFloat {
  constructor(readonly v: number) {}
}
type Node =
  | { k: 'lit'; v: unknown }
  | { k: 'name'; n: string }
  | { k: 'attr'; o: Node; n: string }
  | { k: 'call'; f: Node; args: Node[]; kw: [string, Node][] }
  | { k: 'filter'; o: Node; n: string; args: Node[]; kw: [string, Node][] }
  | { k: 'test'; o: Node; n: string; neg: boolean }
  | { k: 'cond'; c: Node; a: Node; b: Node | undefined }
  | { k: 'and' | 'or'; l: Node; r: Node }
  | { k: 'not'; o: Node }
  | { k: 'bin'; op: string; l: Node; r: Node };
type Token = { t: 'num' | 'str' | 'name' | 'op'; v: string };

function tokenize(src: string): Token[] {
  const out: Token[] = [];
  const re =
    /\s*(?:(\d+(?:\.\d+)?)|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*)|(==|!=|<=|>=|[()[\],.|=<>+\-*/~]))/y;
  let at = 0;
  for (;;) {
    re.lastIndex = at;
    const m = re.exec(src);
    if (!m) break;
    at = re.lastIndex;
    if (m[1] !== undefined) out.push({ t: 'num', v: m[1] });
    else if (m[2] !== undefined || m[3] !== undefined)
      out.push({ t: 'str', v: unescapeString(m[2] ?? m[3]!) });
    else if (m[4] !== undefined) out.push({ t: 'name', v: m[4] });
    else if (m[5] !== undefined) out.push({ t: 'op', v: m[5] });
  }
  if (src.slice(at).trim()) throw new Error(`cannot tokenize: ${src.slice(at)}`);
  return out;
}

function unescapeString(s: string): string {
  return s.replace(/\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)/g, (_, e: string) =>
    e.length > 1 ? String.fromCodePoint(Number.parseInt(e.slice(1), 16)) : e === 'n' ? '\n' : e,
  );
}

function parse(src: string): Node {
  const tokens = tokenize(src);
  let i = 0;
  const peek = (v?: string) => {
    const t = tokens[i];
    return t && (v === undefined || ((t.t === 'op' || t.t === 'name') && t.v === v)) ? t : undefined;
  };
  const take = (v: string) => {
    if (!peek(v)) throw new Error(`expected ${v} at ${tokens[i]?.v}`);
    i += 1;
  };
  const cond = (): Node => {
    const a = or();
    if (!peek('if')) return a;
    i += 1;
    const c = or();
    if (!peek('else')) return { k: 'cond', c, a, b: undefined };
    i += 1;
    return { k: 'cond', c, a, b: cond() };
  };
  const or = (): Node => {
    let l = and();
    while (peek('or')) {
      i += 1;
      l = { k: 'or', l, r: and() };
    }
    return l;
  };
  const and = (): Node => {
    let l = not();
    while (peek('and')) {
      i += 1;
      l = { k: 'and', l, r: not() };
    }
    return l;
  };
  const not = (): Node => {
    if (!peek('not')) return compare();
    i += 1;
    return { k: 'not', o: not() };
  };
  const compare = (): Node => {
    let l = add();
    for (const op of ['==', '!=', '<', '>', '<=', '>=']) {
      if (peek(op)) {
        i += 1;
        l = { k: 'bin', op, l, r: add() };
      }
    }
    return l;
  };
  const add = (): Node => {
    let l = mul();
    while (peek('+') || peek('-') || peek('~')) {
      const op = tokens[i++]!.v;
      l = { k: 'bin', op, l, r: mul() };
    }
    return l;
  };
  const mul = (): Node => {
    let l = filtered();
    while (peek('*') || peek('/')) {
      const op = tokens[i++]!.v;
      l = { k: 'bin', op, l, r: filtered() };
    }
    return l;
  };
  const callArgs = () => {
    const args: Node[] = [];
    const kw: [string, Node][] = [];
    take('(');
    while (!peek(')')) {
      const t = tokens[i];
      if (t?.t === 'name' && tokens[i + 1]?.v === '=' && tokens[i + 1]?.t === 'op') {
        i += 2;
        kw.push([t.v, cond()]);
      } else args.push(cond());
      if (!peek(')')) take(',');
    }
    take(')');
    return { args, kw };
  };
  // Jinja binds filters and tests to the operand (parse_unary -> parse_filter_expr), not to a whole sum.
  const filtered = (): Node => {
    let node = postfix(primary());
    for (;;) {
      if (peek('|')) {
        i += 1;
        const n = tokens[i++]!.v;
        const { args, kw } = peek('(') ? callArgs() : { args: [], kw: [] };
        node = { k: 'filter', o: node, n, args, kw };
      } else if (peek('is')) {
        i += 1;
        const neg = Boolean(peek('not'));
        if (neg) i += 1;
        node = { k: 'test', o: node, n: tokens[i++]!.v, neg };
      } else return node;
    }
  };
  const postfix = (node: Node): Node => {
    for (;;) {
      if (peek('.')) {
        i += 1;
        node = { k: 'attr', o: node, n: tokens[i++]!.v };
      } else if (peek('(')) node = { k: 'call', f: node, ...callArgs() };
      else return node;
    }
  };
  const primary = (): Node => {
    const t = tokens[i++];
    if (!t) throw new Error('unexpected end');
    if (t.t === 'num') return { k: 'lit', v: t.v.includes('.') ? new PyFloat(Number(t.v)) : Number(t.v) };
    if (t.t === 'str') return { k: 'lit', v: t.v };
    if (t.t === 'name') {
      const literals: Record<string, unknown> = { none: null, None: null, true: true, True: true };
      if (t.v in literals) return { k: 'lit', v: literals[t.v] };
      if (t.v === 'false' || t.v === 'False') return { k: 'lit', v: false };
      return { k: 'name', n: t.v };
    }
    if (t.v === '(') {
      const inner = cond();
      take(')');
      return inner;
    }
    throw new Error(`unexpected ${t.v}`);
  };
  const node = cond();
  if (i !== tokens.length) throw new Error(`trailing ${tokens[i]?.v}`);
  return node;
}

const isMapping = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof PyFloat);
const num = (v: unknown) => (v instanceof PyFloat ? v.v : (v as number));
const truthy = (v: unknown): boolean =>
  v === UNDEF || v === null || v === false || v === '' || v === 0
    ? false
    : v instanceof PyFloat
      ? v.v !== 0
      : Array.isArray(v)
        ? v.length > 0
        : isMapping(v)
          ? Object.keys(v).length > 0
          : true;

function pyStr(v: unknown): string {
  if (v === UNDEF) return '';
  if (v === null) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (v instanceof PyFloat) return Number.isInteger(v.v) ? `${v.v}.0` : String(v.v);
  if (typeof v === 'number' || typeof v === 'string') return String(v);
  throw new Error(`no Python str() here for ${JSON.stringify(v)}`);
}

function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (x instanceof PyFloat ? x.v : x));
}

function evaluate(node: Node, scope: Record<string, unknown>): unknown {
  const ev = (n: Node) => evaluate(n, scope);
  switch (node.k) {
    case 'lit':
      return node.v;
    case 'name':
      return node.n in scope ? scope[node.n] : node.n === 'dict' ? 'dict' : UNDEF;
    case 'attr': {
      const o = ev(node.o);
      // Jinja's Undefined raises on attribute access; None and missing keys give Undefined.
      if (o === UNDEF) throw new Error(`attribute ${node.n} of an undefined value`);
      return isMapping(o) && Object.hasOwn(o, node.n) ? o[node.n] : UNDEF;
    }
    case 'call': {
      if (ev(node.f) !== 'dict') throw new Error('only dict() is callable here');
      const base = node.args.length > 0 ? ev(node.args[0]!) : {};
      if (!isMapping(base)) throw new Error('dict() of a non-mapping');
      return { ...base, ...Object.fromEntries(node.kw.map(([k, n]) => [k, ev(n)])) };
    }
    case 'filter': {
      const v = ev(node.o);
      const args = node.args.map(ev);
      if (node.kw.length > 0) throw new Error('filter keyword arguments are not in the subset');
      switch (node.n) {
        case 'default':
          return v === UNDEF || (args[1] === true && !truthy(v)) ? (args[0] ?? '') : v;
        case 'string':
          return pyStr(v);
        case 'truncate': {
          if (typeof v !== 'string') throw new Error('truncate of a non-string');
          const [length = 255, killwords = false, end = '...', leeway = 5] = args as [
            number,
            boolean,
            string,
            number,
          ];
          const chars = Array.from(v);
          if (chars.length <= length + leeway) return v;
          if (killwords) return chars.slice(0, length - end.length).join('') + end;
          const cut = chars.slice(0, length - end.length).join('');
          return cut.slice(0, Math.max(0, cut.lastIndexOf(' '))) + end;
        }
        case 'round':
          return new PyFloat(Number(num(v).toFixed((args[0] as number | undefined) ?? 0)));
        case 'tojson':
          return toJson(v);
        default:
          throw new Error(`filter ${node.n} is not in the subset`);
      }
    }
    case 'test': {
      const v = ev(node.o);
      const tests: Record<string, boolean> = {
        defined: v !== UNDEF,
        undefined: v === UNDEF,
        mapping: isMapping(v),
        none: v === null,
        string: typeof v === 'string',
        number: typeof v === 'number' || v instanceof PyFloat,
      };
      if (!(node.n in tests)) throw new Error(`test ${node.n} is not in the subset`);
      return node.neg ? !tests[node.n] : tests[node.n];
    }
    case 'cond':
      return truthy(ev(node.c)) ? ev(node.a) : node.b ? ev(node.b) : UNDEF;
    case 'and': {
      const l = ev(node.l);
      return truthy(l) ? ev(node.r) : l;
    }
    case 'or': {
      const l = ev(node.l);
      return truthy(l) ? l : ev(node.r);
    }
    case 'not':
      return !truthy(ev(node.o));
    case 'bin': {
      const l = ev(node.l);
      const r = ev(node.r);
      if (node.op === '==' || node.op === '!=') {
        const same =
          l === UNDEF || r === UNDEF
            ? l === r
            : (typeof l === 'number' || l instanceof PyFloat) &&
                (typeof r === 'number' || r instanceof PyFloat)
              ? num(l) === num(r)
              : l === r;
        return node.op === '==' ? same : !same;
      }
      if (node.op === '~') return pyStr(l) + pyStr(r);
      if (typeof l === 'string' && typeof r === 'string' && node.op === '+') return l + r;
      const a = num(l);
      const b = num(r);
      if (typeof a !== 'number' || typeof b !== 'number') throw new Error(`${node.op} of non-numbers`);
      const float = l instanceof PyFloat || r instanceof PyFloat || node.op === '/';
      const ops: Record<string, number> = { '+': a + b, '-': a - b, '*': a * b, '/': a / b };
      if (!(node.op in ops)) throw new Error(`operator ${node.op} is not in the subset`);
      return float ? new PyFloat(ops[node.op]!) : ops[node.op];
    }
  }
}

/** Renders like Home Assistant's MQTT templates: `value` is the text, `value_json` its JSON; output stripped. */
function render(template: string, payload: string): string {
  const scope: Record<string, unknown> = { value: payload };
  try {
    scope.value_json = JSON.parse(payload);
  } catch {
    // not JSON: value_json stays undefined, as in Home Assistant
  }
  const out = template.replace(/\{\{(.*?)\}\}/gs, (_, expr: string) => pyStr(evaluate(parse(expr), scope)));
  return out.trim();
}

const JINJA = `
import json, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
env = ImmutableSandboxedEnvironment()
out = []
for case in json.load(sys.stdin):
    variables = {"value": case["payload"]}
    try:
        variables["value_json"] = json.loads(case["payload"])
    except ValueError:
        pass
    out.append(env.from_string(case["template"]).render(**variables).strip())
print(json.dumps(out))
`;
const hasJinja = spawnSync('python3', ['-c', 'import jinja2'], { stdio: 'ignore' }).status === 0;

function renderWithJinja(cases: { template: string; payload: string }[]): string[] {
  const run = spawnSync('python3', ['-c', JINJA], { input: JSON.stringify(cases), encoding: 'utf8' });
  if (run.status !== 0) throw new Error(run.stderr);
  return JSON.parse(run.stdout) as string[];
}

// ---------------------------------------------------------------------------------------------------------
// Sample payloads, shaped like the wire types of src/publish/topics.ts
// ---------------------------------------------------------------------------------------------------------

const health = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    ts: '2025-01-01T00:00:00.000Z',
    gatewayId: GW,
    version: '0.1.0',
    uptimeSeconds: 60,
    memory: { rssBytes: 123_456_789, heapUsedBytes: 40_000_000 },
    queues: { journalPending: 3, outboxMessages: 4, outboxBytes: 900, outboxOldestAgeSeconds: null },
    rates: { ingest: 1.5, rejects: 0 },
    drops: { outbox: 0, rejected: 0, duplicates: 0 },
    ...extra,
  });
const result = (kind: string, source: string, output: Record<string, unknown>) =>
  JSON.stringify({
    id: 'job-1',
    kind,
    source,
    ts: '2025-01-01T00:00:01.000Z',
    model: 'gemma-3n-E2B-it-Q4_K_M.gguf',
    variant: 'e2b-q4',
    latencyMs: 4200,
    generation: { tokens: 40, promptTokens: 300, ms: 3900.5 },
    output,
    media: '/api/results/job-1/media',
  });
const event = (kind: 'anomaly' | 'alert', detail: Record<string, unknown>) =>
  JSON.stringify({
    id: 7,
    ts: '2025-01-01T00:00:02.000Z',
    source: 'pump1',
    kind,
    severity: 'warning',
    message: 'x',
    detail,
  });
const longText = 'the quick brown fox jumps over the lazy dog '.repeat(10); // 440 characters
const WEIRD_METRIC = "t'emp}}.°C";

/** [template, payload, expected state (or, for attribute templates, the expected JSON object)] */
const CASES: [string, string, string | Record<string, unknown>][] = [
  ['{{ value }}', 'online', 'online'],
  ['{{ value }}', 'stopping', 'stopping'],
  [TEMPLATES.variant, health(), 'none'],
  [TEMPLATES.variant, health({ model: { state: 'ready', variant: 'e4b-q4' } }), 'e4b-q4'],
  [TEMPLATES.variant, health({ model: { state: 'loading', variant: null } }), 'none'],
  [TEMPLATES.queueDepth, health(), '7'],
  [TEMPLATES.memoryRss, health(), '117.7'],
  [TEMPLATES.memoryRss, health({ memory: { rssBytes: 157_286_400, heapUsedBytes: 1 } }), '150.0'],
  [
    '{{ value_json.queues | tojson }}',
    health(),
    { journalPending: 3, outboxMessages: 4, outboxBytes: 900, outboxOldestAgeSeconds: null },
  ],
  [
    TEMPLATES.description,
    result('frame', 'yard', { description: 'Two people at the gate.' }),
    'Two people at the gate.',
  ],
  [TEMPLATES.description, result('frame', 'yard', { description: longText }), longText.slice(0, 255).trim()],
  [TEMPLATES.description, result('frame', 'yard', { description: 'é'.repeat(300) }), 'é'.repeat(255)],
  [TEMPLATES.description, result('frame', 'yard', { description: null }), ''],
  [TEMPLATES.description, result('frame', 'yard', {}), ''],
  [TEMPLATES.alert, result('frame', 'yard', { alert: true, alertReason: 'smoke' }), 'ON'],
  [TEMPLATES.alert, result('frame', 'yard', { alert: false, alertReason: '' }), 'OFF'],
  [TEMPLATES.alert, result('frame', 'yard', {}), 'OFF'],
  [
    TEMPLATES.alertAttributes,
    result('frame', 'yard', { alert: true, alertReason: 'smoke' }),
    { reason: 'smoke', ts: '2025-01-01T00:00:01.000Z' },
  ],
  [
    TEMPLATES.alertAttributes,
    result('frame', 'yard', { alert: false }),
    { reason: '', ts: '2025-01-01T00:00:01.000Z' },
  ],
  [
    TEMPLATES.resultAttributes,
    result('frame', 'yard', { description: 'a cat', people: 0, alert: false, confidence: 80 }),
    {
      description: 'a cat',
      people: 0,
      alert: false,
      confidence: 80,
      ts: '2025-01-01T00:00:01.000Z',
      model: 'gemma-3n-E2B-it-Q4_K_M.gguf',
      variant: 'e2b-q4',
    },
  ],
  [
    TEMPLATES.transcript,
    result('audio', 'mic1', { transcript: 'help, over here', language: 'en' }),
    'help, over here',
  ],
  [TEMPLATES.transcript, result('audio', 'mic1', { transcript: '', sounds: ['engine'] }), ''],
  [TEMPLATES.transcript, result('audio', 'mic1', { transcript: longText }), longText.slice(0, 255).trim()],
  [anomalyTemplate('temp'), event('anomaly', { device: 'pump1', metric: 'temp', value: 91 }), 'ON'],
  [anomalyTemplate('temp'), event('anomaly', { device: 'pump1', metric: 'pressure', value: 2 }), ''],
  [anomalyTemplate('temp'), event('alert', { resultId: 'j', resultKind: 'frame', alert: true }), ''],
  [anomalyTemplate(WEIRD_METRIC), event('anomaly', { device: 'pump1', metric: WEIRD_METRIC }), 'ON'],
  [anomalyTemplate(WEIRD_METRIC), event('anomaly', { device: 'pump1', metric: 'temp' }), ''],
  ['{{ value_json.mean }}', JSON.stringify({ device: 'pump1', metric: 'temp', mean: 21.25 }), '21.25'],
];

describe('Home Assistant value templates', () => {
  it('render the sample payloads to the expected states (Jinja subset evaluator)', () => {
    for (const [template, payload, expected] of CASES) {
      const out = render(template, payload);
      if (typeof expected === 'string') expect(out, template).toBe(expected);
      else expect(JSON.parse(out), template).toEqual(expected);
    }
  });

  it.skipIf(!hasJinja)('render the same with real Jinja2 (python3 jinja2 sandbox)', () => {
    const real = renderWithJinja(CASES.map(([template, payload]) => ({ template, payload })));
    CASES.forEach(([template, payload, expected], i) => {
      const out = real[i]!;
      if (typeof expected === 'string') expect(out, template).toBe(expected);
      else expect(JSON.parse(out), template).toEqual(expected);
      const ours = render(template, payload);
      if (typeof expected === 'string') expect(ours).toBe(out);
    });
  });

  it('the evaluator refuses what Jinja refuses: attributes of an undefined value', () => {
    expect(() => render('{{ value_json.nothing.here }}', '{}')).toThrow(/undefined/);
  });

  it('every template in the configs is one of the checked ones', () => {
    const checked = new Set(CASES.map(([t]) => t));
    const configs = discoveryConfigs(
      { gatewayId: GW, topics, version: '0.1.0' },
      {
        cameras: ['yard'],
        series: [
          { device: 'pump1', metric: 'temp', unit: '°C' },
          { device: 'pump1', metric: WEIRD_METRIC },
        ],
        audioSources: ['mic1'],
      },
    );
    for (const { payload } of configs) {
      for (const key of ['value_template', 'json_attributes_template'] as const) {
        const template = payload[key];
        if (typeof template === 'string') expect(checked.has(template), template).toBe(true);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Discovery against a real broker: the embedded aedes broker and real mqtt.js clients
// ---------------------------------------------------------------------------------------------------------

interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

class MemoryStore implements DiscoveryStore {
  topics: string[] = [];
  load(): string[] {
    return [...this.topics];
  }
  save(topics: string[]): void {
    this.topics = [...topics];
  }
}

let broker: EmbeddedBroker;
let clients: MqttClient[];
let disposables: HomeAssistantDiscovery[];

beforeEach(async () => {
  broker = await startEmbeddedBroker({ host: '127.0.0.1', port: 0, logger });
  clients = [];
  disposables = [];
});

afterEach(async () => {
  for (const d of disposables) await d.dispose();
  for (const c of clients) await c.endAsync(true);
  await broker.close();
});

async function client(): Promise<MqttClient> {
  const c = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  clients.push(c);
  return c;
}

/** A subscriber to every discovery config (as Home Assistant is): what it received, in order. */
async function listen(): Promise<Received[]> {
  const c = await client();
  const received: Received[] = [];
  c.on('message', (topic, payload, packet) =>
    received.push({ topic, payload: payload.toString(), retain: packet.retain }),
  );
  await c.subscribeAsync('homeassistant/+/+/+/config', { qos: 1 });
  return received;
}

/** The retained configs a new subscriber gets, once `count` of them came. */
async function retained(count: number): Promise<Map<string, Record<string, unknown>>> {
  const received = await listen();
  await waitFor(`${count} retained configs`, () => received.length >= count);
  await new Promise((resolve) => setTimeout(resolve, 100)); // none beyond them
  expect(received).toHaveLength(count);
  expect(received.every((m) => m.retain)).toBe(true);
  return new Map(received.map((m) => [m.topic, JSON.parse(m.payload) as Record<string, unknown>]));
}

async function gateway(sources: KnownSources, store: DiscoveryStore, failOn?: (topic: string) => boolean) {
  const c = await client();
  const calls: { topic: string; payload: string; opts: unknown }[] = [];
  const discovery = new HomeAssistantDiscovery({
    gatewayId: GW,
    topics,
    version: '0.1.0',
    publish: async (topic, payload, opts) => {
      calls.push({ topic, payload, opts });
      if (failOn?.(topic)) throw new Error('broker away');
      await c.publishAsync(topic, payload, opts);
    },
    known: () => sources,
    store,
    logger,
    republishDelayMs: 100,
  });
  disposables.push(discovery);
  // The daemon's part: subscribe to Home Assistant's status and hand its messages over.
  c.on('message', (topic, payload) => discovery.onMessage(topic, payload));
  await c.subscribeAsync(discovery.statusTopic, { qos: 1 });
  return { discovery, calls };
}

const sources = (): KnownSources => ({
  cameras: ['yard', 'gate'],
  series: [
    { device: 'pump1', metric: 'temp', unit: '°C' },
    { device: 'pump1', metric: 'pressure', unit: 'bar' },
  ],
  audioSources: ['mic1'],
});
/** 4 gateway entities + 2 per camera, series and audio source */
const COUNT = 4 + 2 * 2 + 2 * 2 + 2;

describe('HomeAssistantDiscovery', () => {
  it('announces every entity retained, under the discovery scheme, with component-appropriate keys', async () => {
    const store = new MemoryStore();
    const { discovery, calls } = await gateway(sources(), store);
    await discovery.announce();
    expect(calls).toHaveLength(COUNT);
    expect(calls.every((c) => JSON.stringify(c.opts) === JSON.stringify({ retain: true, qos: 1 }))).toBe(
      true,
    );

    const configs = await retained(COUNT);
    expect(store.topics.sort()).toEqual([...configs.keys()].sort());
    const ids = new Set<string>();
    for (const [topic, config] of configs) {
      expect(topic).toMatch(DISCOVERY);
      const component = topic.split('/')[1]!;
      expect(config.unique_id).toMatch(/^outpost_gw-ha_[A-Za-z0-9_-]+$/);
      expect(topic.split('/')[3]).toBe(String(config.unique_id).slice('outpost_gw-ha_'.length));
      ids.add(String(config.unique_id));
      expect(config.default_entity_id).toMatch(ENTITY_ID);
      expect(String(config.default_entity_id).startsWith(`${component}.`)).toBe(true);
      expect(config.name).toEqual(expect.any(String));
      const device = config.device as Record<string, unknown>;
      expect(device.manufacturer).toBe('Outpost');
      expect(device.sw_version).toBe('0.1.0');
      expect(device.identifiers).toEqual([expect.stringMatching(/^outpost_gw-ha(_|$)/)]);
      if (device.identifiers !== undefined && (device.identifiers as string[])[0] !== 'outpost_gw-ha') {
        expect(device.via_device).toBe('outpost_gw-ha');
      }
      expect(config.state_topic).toMatch(/^outpost\/gw-ha\//);
      expect(config.value_template).toEqual(expect.stringMatching(/^\{\{.*\}\}$/));
      if (config.unique_id !== 'outpost_gw-ha_status') {
        expect(config.availability).toEqual([
          { topic: 'outpost/gw-ha/status', payload_available: 'online', payload_not_available: 'offline' },
        ]);
      } else {
        expect(config.availability).toBeUndefined(); // it shows `offline` itself
      }
      if (component === 'binary_sensor') {
        expect(config).toMatchObject({ payload_on: 'ON', payload_off: 'OFF' });
      }
    }
    expect(ids.size).toBe(COUNT);

    const byId = (id: string) => [...configs.values()].find((c) => c.unique_id === `outpost_gw-ha_${id}`)!;
    expect(byId('status')).toMatchObject({
      state_topic: 'outpost/gw-ha/status',
      device: { identifiers: ['outpost_gw-ha'], name: 'Outpost gw-ha', model: 'Outpost field gateway' },
    });
    for (const id of ['model_variant', 'queue_depth', 'memory_rss']) {
      expect(byId(id)).toMatchObject({ state_topic: 'outpost/gw-ha/health', entity_category: 'diagnostic' });
    }
    expect(byId('memory_rss')).toMatchObject({ unit_of_measurement: 'MiB', device_class: 'data_size' });
    expect(byId('camera_yard_description')).toMatchObject({
      state_topic: 'outpost/gw-ha/results/frame/yard',
      value_template: TEMPLATES.description,
      json_attributes_topic: 'outpost/gw-ha/results/frame/yard',
      device: { identifiers: ['outpost_gw-ha_camera_yard'], name: 'yard', via_device: 'outpost_gw-ha' },
    });
    expect(byId('camera_yard_alert')).toMatchObject({
      state_topic: 'outpost/gw-ha/results/frame/yard',
      value_template: TEMPLATES.alert,
    });
    expect(byId('series_pump1_temp_anomaly')).toMatchObject({
      state_topic: 'outpost/gw-ha/events/pump1',
      value_template: anomalyTemplate('temp'),
      off_delay: 300,
      device: { identifiers: ['outpost_gw-ha_sensor_pump1'], via_device: 'outpost_gw-ha' },
    });
    expect(byId('series_pump1_temp_mean')).toMatchObject({
      state_topic: 'outpost/gw-ha/windows/pump1/temp',
      unit_of_measurement: '°C',
    });
    expect(byId('audio_mic1_transcript')).toMatchObject({
      state_topic: 'outpost/gw-ha/results/audio/mic1',
      value_template: TEMPLATES.transcript,
    });
    expect([...configs.keys()]).toContain(
      'homeassistant/binary_sensor/outpost_gw-ha/camera_gate_alert/config',
    );
    expect([...configs.keys()]).toContain('homeassistant/sensor/outpost_gw-ha/status/config');
  });

  it('republishes everything once when Home Assistant comes online, debounced', async () => {
    const { discovery, calls } = await gateway(sources(), new MemoryStore());
    await discovery.announce();
    const ha = await client();
    const received = await listen();
    await waitFor('retained configs', () => received.length === COUNT);
    calls.length = 0;

    await ha.publishAsync('homeassistant/status', 'offline', { qos: 1 });
    await ha.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await ha.publishAsync('homeassistant/status', 'online', { qos: 1 });
    await waitFor('the republish', () => calls.length === COUNT);
    await waitFor('Home Assistant receiving it', () => received.length === 2 * COUNT);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(calls).toHaveLength(COUNT); // one republish for two `online`s, none for `offline`
    expect(new Set(received.slice(COUNT).map((m) => m.topic)).size).toBe(COUNT);
  });

  it('removes a source gone between two announces with an empty retained config', async () => {
    const known = sources();
    const store = new MemoryStore();
    const { discovery, calls } = await gateway(known, store);
    await discovery.announce();
    const live = await listen();
    await waitFor('retained configs', () => live.length === COUNT);

    known.cameras = ['gate'];
    calls.length = 0;
    await discovery.announce();
    const gone = [
      'homeassistant/sensor/outpost_gw-ha/camera_yard_description/config',
      'homeassistant/binary_sensor/outpost_gw-ha/camera_yard_alert/config',
    ];
    const empties = calls.filter((c) => c.payload === '');
    expect(empties.map((c) => c.topic).sort()).toEqual([...gone].sort());
    expect(empties.every((c) => JSON.stringify(c.opts) === JSON.stringify({ retain: true, qos: 1 }))).toBe(
      true,
    );
    await waitFor('the removals', () => live.filter((m) => m.payload === '').length === 2);
    expect(store.topics).not.toContain(gone[0]);
    expect(store.topics).toHaveLength(COUNT - 2);
    // The empty retained message cleared the broker's copy: a new subscriber gets only what is current.
    const now = await retained(COUNT - 2);
    for (const topic of gone) expect(now.has(topic)).toBe(false);
  });

  it('after a restart, removes the configs the store remembers and the sources no longer have', async () => {
    const store = new MemoryStore();
    const first = await gateway(sources(), store);
    await first.discovery.announce();
    await first.discovery.dispose();

    const fewer = { ...sources(), audioSources: [] };
    const second = await gateway(fewer, store);
    await second.discovery.announce();
    const empties = second.calls.filter((c) => c.payload === '').map((c) => c.topic);
    expect(empties.sort()).toEqual([
      'homeassistant/binary_sensor/outpost_gw-ha/audio_mic1_alert/config',
      'homeassistant/sensor/outpost_gw-ha/audio_mic1_transcript/config',
    ]);
    await retained(COUNT - 2);
  });

  it('refresh publishes only new configs and removals', async () => {
    const known = sources();
    const { discovery, calls } = await gateway(known, new MemoryStore());
    await discovery.refresh(); // nothing announced yet: everything
    expect(calls).toHaveLength(COUNT);

    calls.length = 0;
    await discovery.refresh();
    expect(calls).toHaveLength(0);

    known.cameras = [...known.cameras, 'dock'];
    known.series = known.series.filter((s) => s.metric !== 'pressure');
    await discovery.refresh();
    expect(calls.filter((c) => c.payload !== '').map((c) => c.topic)).toEqual([
      'homeassistant/sensor/outpost_gw-ha/camera_dock_description/config',
      'homeassistant/binary_sensor/outpost_gw-ha/camera_dock_alert/config',
    ]);
    expect(calls.filter((c) => c.payload === '').map((c) => c.topic)).toEqual([
      'homeassistant/binary_sensor/outpost_gw-ha/series_pump1_pressure_anomaly/config',
      'homeassistant/sensor/outpost_gw-ha/series_pump1_pressure_mean/config',
    ]);
    await retained(COUNT);
  });

  it('keeps a removal that failed in the store and sends it again next time', async () => {
    const store = new MemoryStore();
    const known = sources();
    let away = false;
    const { discovery, calls } = await gateway(known, store, (topic) => away && topic.includes('mic1'));
    await discovery.announce();
    known.audioSources = [];
    away = true;
    await discovery.announce();
    expect(store.topics.filter((t) => t.includes('mic1'))).toHaveLength(2);

    away = false;
    calls.length = 0;
    await discovery.refresh();
    expect(calls.map((c) => [c.topic.includes('mic1'), c.payload])).toEqual([
      [true, ''],
      [true, ''],
    ]);
    expect(store.topics.filter((t) => t.includes('mic1'))).toHaveLength(0);
  });
});

describe('discoveryConfigs ids', () => {
  it('are valid, stable and distinct for names that sanitize alike', () => {
    const input = { gatewayId: 'gate way.01', topics: wireTopics('outpost', 'gate way.01'), version: '1' };
    const odd: KnownSources = {
      cameras: ['front door', 'front_door', 'front.door', 'Front door', '门'],
      series: [
        { device: 'a_b', metric: 'c' },
        { device: 'a', metric: 'b_c' },
        { device: 'a', metric: 'b_c' }, // twice: one entity
      ],
      audioSources: ['front door'],
    };
    const configs = discoveryConfigs(input, odd);
    expect(configs).toHaveLength(4 + 5 * 2 + 2 * 2 + 2);
    const ids = configs.map((c) => c.uniqueId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(new Set(configs.map((c) => c.topic)).size).toBe(configs.length);
    for (const c of configs) {
      expect(c.topic).toMatch(
        /^homeassistant\/(sensor|binary_sensor)\/[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+\/config$/,
      );
      expect(c.payload.default_entity_id).toMatch(ENTITY_ID);
    }
    expect(configs.map((c) => c.uniqueId)).toEqual(discoveryConfigs(input, odd).map((c) => c.uniqueId));
    expect(configs[0]!.payload.device).toMatchObject({ name: 'Outpost gate way.01' });
  });
});
