import { describe, expect, it } from 'vitest';
import { type GatewayStatusSnapshot, renderGatewayMetrics } from '../../src/api/gatewayMetrics.js';
import {
  Counter,
  Gauge,
  Histogram,
  MetricDefinitionError,
  MetricSampleError,
  MetricsRegistry,
  renderMetrics,
} from '../../src/api/metricsRegistry.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string | undefined;
  type: string | undefined;
  samples: Sample[];
}

const SAMPLE_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

function parseValue(text: string): number {
  if (text === '+Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  if (!/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value ${JSON.stringify(text)}`);
  return Number(text);
}

/** `{a="x",b="y"}` from `at`: the labels and where the text after them starts. */
function parseLabels(line: string, at: number): [Record<string, string>, number] {
  const labels: Record<string, string> = {};
  let i = at + 1;
  while (line[i] !== '}') {
    const name = LABEL_NAME.exec(line.slice(i))?.[0];
    if (!name) throw new Error(`bad label name in ${line}`);
    if (name in labels) throw new Error(`label ${name} twice in ${line}`);
    i += name.length;
    if (line.slice(i, i + 2) !== '="') throw new Error(`expected =" in ${line}`);
    i += 2;
    let value = '';
    for (;;) {
      const c = line[i++];
      if (c === undefined) throw new Error(`unterminated label value in ${line}`);
      if (c === '"') break;
      if (c === '\\') {
        const e = line[i++];
        if (e === 'n') value += '\n';
        else if (e === '\\' || e === '"') value += e;
        else throw new Error(`bad escape \\${e} in ${line}`);
      } else {
        value += c;
      }
    }
    labels[name] = value;
    if (line[i] === ',') i += 1;
    else if (line[i] !== '}') throw new Error(`expected , or } in ${line}`);
  }
  return [labels, i + 1];
}

const unescapeHelp = (text: string) =>
  text.replace(/\\(.)/g, (_, c: string) => {
    if (c === 'n') return '\n';
    if (c === '\\') return '\\';
    throw new Error(`bad HELP escape \\${c}`);
  });

/** Which family a sample line belongs to: its own name, or a histogram's `_bucket`, `_sum`, `_count`. */
function familyOf(families: Map<string, Family>, name: string): Family | undefined {
  const own = families.get(name);
  if (own) return own;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const base = m ? families.get(m[1]!) : undefined;
  return base?.type === 'histogram' ? base : undefined;
}

/**
 * A strict reader of the text format, version 0.0.4: HELP and TYPE at most once per family and before its
 * samples, every sample in a declared family, a family's samples together, no series twice.
 */
function parse(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a line feed');
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  const seen = new Set<string>();
  let current: Family | undefined;
  const declare = (name: string) => {
    if (closed.has(name)) throw new Error(`family ${name} is declared again after other families`);
    let family = families.get(name);
    if (!family) {
      family = { name, help: undefined, type: undefined, samples: [] };
      families.set(name, family);
    }
    if (current && current !== family) closed.add(current.name);
    current = family;
    return family;
  };
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      const family = declare(name);
      if (family.samples.length > 0) throw new Error(`${kind} of ${name} after its samples`);
      if (kind === 'HELP') {
        if (family.help !== undefined) throw new Error(`HELP of ${name} twice`);
        family.help = unescapeHelp(rest);
      } else {
        if (family.type !== undefined) throw new Error(`TYPE of ${name} twice`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) {
          throw new Error(`bad TYPE ${rest}`);
        }
        family.type = rest;
      }
      continue;
    }
    if (line.startsWith('#')) continue;
    const name = SAMPLE_NAME.exec(line)?.[0];
    if (!name) throw new Error(`bad sample line ${JSON.stringify(line)}`);
    let [labels, i] = [{} as Record<string, string>, name.length];
    if (line[i] === '{') [labels, i] = parseLabels(line, i);
    if (line[i] !== ' ') throw new Error(`expected a space in ${line}`);
    const [value, timestamp, ...extra] = line.slice(i + 1).split(' ');
    if (extra.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) {
      throw new Error(`bad sample line ${line}`);
    }
    const family = familyOf(families, name);
    if (!family?.type) throw new Error(`sample ${name} has no declared family`);
    if (family !== current) throw new Error(`sample ${name} is apart from its family's other samples`);
    const key = JSON.stringify([name, Object.entries(labels).sort()]);
    if (seen.has(key)) throw new Error(`series ${key} twice`);
    seen.add(key);
    family.samples.push({ name, labels, value: parseValue(value ?? '') });
  }
  for (const family of families.values()) {
    if (family.help === undefined || family.type === undefined)
      throw new Error(`${family.name} lacks HELP or TYPE`);
    if (family.type === 'histogram') checkHistogram(family);
  }
  return families;
}

/** Buckets cumulative, in increasing `le`, ending with `+Inf` equal to `_count`, per series. */
function checkHistogram(family: Family) {
  const series = new Map<string, Sample[]>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    series.set(key, [...(series.get(key) ?? []), s]);
  }
  for (const [key, samples] of series) {
    const buckets = samples.filter((s) => s.name === `${family.name}_bucket`);
    const count = samples.find((s) => s.name === `${family.name}_count`);
    const sum = samples.find((s) => s.name === `${family.name}_sum`);
    if (!count || !sum || buckets.length === 0) throw new Error(`${family.name}${key} is incomplete`);
    const bounds = buckets.map((b) => parseValue(b.labels.le ?? ''));
    for (let i = 1; i < buckets.length; i++) {
      if (!(bounds[i]! > bounds[i - 1]!)) throw new Error(`${family.name}${key}: le not increasing`);
      if (buckets[i]!.value < buckets[i - 1]!.value) throw new Error(`${family.name}${key}: not cumulative`);
    }
    const last = buckets.at(-1)!;
    if (last.labels.le !== '+Inf') throw new Error(`${family.name}${key}: no +Inf bucket last`);
    if (last.value !== count.value) throw new Error(`${family.name}${key}: +Inf bucket is not _count`);
  }
}

/** The value of one sample; undefined when there is none. */
function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}) {
  const family = familyOf(families, name);
  const match = family?.samples.filter(
    (s) =>
      s.name === name &&
      Object.keys(s.labels).length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (match && match.length > 1) throw new Error(`${name} matches ${match.length} samples`);
  return match?.[0]?.value;
}

const NOW = Date.UTC(2026, 2, 14, 12, 0, 0);

/** Shaped as Daemon.status() builds it, extra fields included. */
const STATUS = {
  gatewayId: 'barn-7',
  version: '0.1.0',
  startedAt: new Date(NOW - 3_600_000).toISOString(),
  uptimeSeconds: 3600,
  state: 'running',
  broker: {
    url: 'mqtt://127.0.0.1:1883',
    embedded: true,
    connected: true,
    reconnects: 2,
    lastError: null,
  },
  http: { url: 'http://127.0.0.1:8080', auth: false },
  ingest: {
    accepted: { sensors: 1200, frames: 48, audio: 12 },
    rejected: { sensors: 0, frames: 3, audio: 1 },
    duplicates: 5,
    bytes: 9_876_543,
    commits: 400,
  },
  pipeline: {
    processed: 1257,
    rejected: 7,
    readings: 1190,
    anomalies: 4,
    windows: 60,
    late: 2,
    series: 6,
    commitFailures: 0,
    frames: {
      cameras: {},
      decoded: 0,
      meanDecodeMs: null,
    },
    audio: { sources: {}, realTimeFactor: null },
  },
  rejects: { 'too-large': 4, 'bad-json': 6, 'not-a-number': 1 },
  queues: {
    journalPending: 17,
    outbox: {
      messages: 42,
      bytes: 65_536,
      oldestAt: new Date(NOW - 90_000).toISOString(),
      inflight: 3,
      published: 3100,
      dropped: 1,
    },
  },
  memory: { rssBytes: 180_000_000, heapUsedBytes: 60_000_000 },
  media: { files: 120, bytes: 52_000_000, maxBytes: 1_000_000_000 },
  frames: {
    cameras: {
      yard: {
        decisions: {
          first: 1,
          changed: 20,
          forced: 2,
          ungated: 0,
          unchanged: 15,
          'too-soon': 6,
          cooldown: 1,
        },
        rejected: 2,
        last: { at: new Date(NOW - 1000).toISOString(), reason: 'changed', score: 0.31 },
      },
      gate: {
        decisions: { first: 1, changed: 3, forced: 0, ungated: 0, unchanged: 0, 'too-soon': 0, cooldown: 0 },
        rejected: 1,
        last: null,
      },
    },
    decoded: 27,
    meanDecodeMs: 41.5,
    superseded: 4,
  },
  audio: {
    sources: {
      porch: {
        clips: 10,
        rejected: 1,
        seconds: 95.5,
        voicedSeconds: 30.25,
        droppedSeconds: 65.25,
        segments: 7,
        last: { at: new Date(NOW - 5000).toISOString(), format: 'wav', sampleRate: 48000, channels: 2 },
      },
    },
    realTimeFactor: 0.012,
    dropped: 2,
    microphone: null,
  },
  model: {
    state: 'ready',
    reason: null,
    model: 'gemma-3n-E2B-it',
    variant: 'e2b-q4',
    contextSize: 4096,
    runtime: 'llama.node',
    gpu: null,
    capabilities: { text: true, image: true, audio: false },
    projector: '/models/mmproj.gguf',
    projectorError: null,
    worker: { pid: 4242, alive: true, crashes: 1 },
    variants: [{ id: 'e2b-q4', path: '/models/e2b.gguf', present: true, projectorBytes: 0 }],
    lastDecision: null,
    governor: {
      budgetBytes: 3_000_000_000,
      limitedBy: 'memAvailable',
      memAvailableBytes: 3_500_000_000,
      totalBytes: 8_000_000_000,
      cgroupLimitBytes: null,
      cgroupUsageBytes: null,
      pressureSome10: null,
      workerRssBytes: 2_400_000_000,
      current: null,
      corrections: {},
      stepUpHeldMs: null,
      killed: [],
      decisions: [],
    },
  },
  jobs: {
    queued: 3,
    running: 1,
    'waiting-model': 0,
    'waiting-capability': 2,
    done: 90,
    failed: 4,
    dropped: 4,
    waiting: [
      { state: 'queued', kind: 'frame', reason: null, jobs: 2 },
      { state: 'queued', kind: 'audio', reason: null, jobs: 1 },
      { state: 'waiting-capability', kind: 'audio', reason: 'no audio input', jobs: 1 },
      { state: 'waiting-capability', kind: 'audio', reason: 'projector missing', jobs: 1 },
    ],
    runner: { done: 90, failed: 4, retried: 6, running: 'job-1' },
  },
};

describe('renderGatewayMetrics', () => {
  it('maps a full status snapshot to valid families with its values', () => {
    const text = renderGatewayMetrics(STATUS, new MetricsRegistry(), NOW);
    const m = parse(text);

    expect(value(m, 'outpost_ingest_messages_total', { route: 'sensors' })).toBe(1200);
    expect(value(m, 'outpost_ingest_messages_total', { route: 'frames' })).toBe(48);
    expect(value(m, 'outpost_ingest_rejected_total', { route: 'frames' })).toBe(3);
    expect(value(m, 'outpost_ingest_rejected_total', { route: 'sensors' })).toBe(0);
    expect(value(m, 'outpost_rejects_total', { code: 'bad-json' })).toBe(6);
    expect(value(m, 'outpost_rejects_total', { code: 'too-large' })).toBe(4);
    expect(value(m, 'outpost_ingest_duplicates_total')).toBe(5);
    expect(value(m, 'outpost_ingest_bytes_total')).toBe(9_876_543);

    expect(value(m, 'outpost_frame_gate_drops_total', { camera: 'yard', reason: 'unchanged' })).toBe(15);
    expect(value(m, 'outpost_frame_gate_drops_total', { camera: 'yard', reason: 'too-soon' })).toBe(6);
    expect(value(m, 'outpost_frame_gate_drops_total', { camera: 'yard', reason: 'changed' })).toBeUndefined();
    expect(value(m, 'outpost_frame_gate_passed_total', { camera: 'gate', reason: 'changed' })).toBe(3);
    expect(value(m, 'outpost_frames_rejected_total', { camera: 'yard' })).toBe(2);
    expect(value(m, 'outpost_frames_superseded_total')).toBe(4);
    expect(value(m, 'outpost_frames_decoded_total')).toBe(27);

    expect(value(m, 'outpost_audio_received_seconds_total', { source: 'porch' })).toBe(95.5);
    expect(value(m, 'outpost_audio_voiced_seconds_total', { source: 'porch' })).toBe(30.25);
    expect(value(m, 'outpost_audio_dropped_seconds_total', { source: 'porch' })).toBe(65.25);
    expect(value(m, 'outpost_audio_jobs_dropped_total')).toBe(2);
    expect(value(m, 'outpost_audio_real_time_factor')).toBe(0.012);

    for (const state of ['queued', 'running', 'waiting-model', 'waiting-capability', 'done', 'failed']) {
      expect(value(m, 'outpost_jobs', { state }), state).toBe(STATUS.jobs[state as keyof typeof STATUS.jobs]);
    }
    expect(m.get('outpost_jobs')!.type).toBe('gauge');
    expect(m.get('outpost_jobs')!.samples).toHaveLength(7);
    // the two waiting-capability audio rows differ only by reason: summed
    expect(value(m, 'outpost_jobs_waiting', { state: 'waiting-capability', kind: 'audio' })).toBe(2);
    expect(value(m, 'outpost_jobs_waiting', { state: 'queued', kind: 'frame' })).toBe(2);
    expect(value(m, 'outpost_jobs_finished_total', { result: 'failed' })).toBe(4);
    expect(value(m, 'outpost_jobs_retried_total')).toBe(6);

    expect(value(m, 'outpost_journal_pending')).toBe(17);
    expect(value(m, 'outpost_outbox_messages')).toBe(42);
    expect(value(m, 'outpost_outbox_bytes')).toBe(65_536);
    expect(value(m, 'outpost_outbox_oldest_age_seconds')).toBe(90);
    expect(value(m, 'outpost_outbox_dropped_total')).toBe(1);
    expect(value(m, 'outpost_outbox_published_total')).toBe(3100);

    expect(value(m, 'outpost_broker_connected')).toBe(1);
    expect(value(m, 'outpost_broker_reconnects_total')).toBe(2);
    expect(value(m, 'outpost_model_info', { variant: 'e2b-q4', runtime: 'llama.node', state: 'ready' })).toBe(
      1,
    );
    expect(value(m, 'outpost_model_capability', { capability: 'audio' })).toBe(0);
    expect(value(m, 'outpost_model_capability', { capability: 'image' })).toBe(1);
    expect(value(m, 'outpost_model_context_tokens')).toBe(4096);
    expect(value(m, 'outpost_model_memory_budget_bytes')).toBe(3_000_000_000);
    expect(value(m, 'outpost_model_worker_resident_memory_bytes')).toBe(2_400_000_000);
    expect(value(m, 'outpost_process_resident_memory_bytes')).toBe(180_000_000);
    expect(
      value(m, 'outpost_gateway_info', { gateway_id: 'barn-7', version: '0.1.0', state: 'running' }),
    ).toBe(1);
    expect(value(m, 'outpost_start_time_seconds')).toBe((NOW - 3_600_000) / 1000);

    for (const family of m.values()) {
      expect(family.name.startsWith('outpost_'), family.name).toBe(true);
      if (family.type === 'counter') expect(family.name.endsWith('_total'), family.name).toBe(true);
    }
    // the registry's job families are there before the first job, without samples
    expect(m.get('outpost_job_duration_seconds')?.type).toBe('histogram');
    expect(m.get('outpost_job_duration_seconds')?.samples).toEqual([]);
  });

  it('orders families by name and series by labels, whatever the order of the snapshot', () => {
    const text = renderGatewayMetrics(STATUS, new MetricsRegistry(), NOW);
    const reversed = {
      ...STATUS,
      ingest: { ...STATUS.ingest, accepted: { audio: 12, frames: 48, sensors: 1200 } },
      rejects: Object.fromEntries(Object.entries(STATUS.rejects).reverse()),
    };
    expect(renderGatewayMetrics(reversed, new MetricsRegistry(), NOW)).toBe(text);
    const names = [...parse(text).keys()];
    expect(names).toEqual([...names].sort());
    const routes = parse(text)
      .get('outpost_ingest_messages_total')!
      .samples.map((s) => s.labels.route);
    expect(routes).toEqual(['audio', 'frames', 'sensors']);
  });

  it('renders a snapshot with missing parts as valid text, leaving those families out', () => {
    const registry = new MetricsRegistry();
    const empty = parse(renderGatewayMetrics({}, registry, NOW));
    expect([...empty.keys()].every((name) => name.startsWith('outpost_job_'))).toBe(true);

    const partial: GatewayStatusSnapshot = {
      broker: { connected: false },
      ingest: { accepted: { sensors: 3 } },
      queues: { outbox: { messages: 0, bytes: 0, oldestAt: null } },
      model: { state: 'disabled' },
      jobs: { queued: 0, runner: null },
    };
    const m = parse(renderGatewayMetrics(partial, registry, NOW));
    expect(value(m, 'outpost_broker_connected')).toBe(0);
    expect(value(m, 'outpost_ingest_messages_total', { route: 'sensors' })).toBe(3);
    expect(value(m, 'outpost_outbox_oldest_age_seconds')).toBe(0);
    expect(value(m, 'outpost_model_info', { variant: '', runtime: '', state: 'disabled' })).toBe(1);
    expect(value(m, 'outpost_jobs', { state: 'queued' })).toBe(0);
    for (const absent of [
      'outpost_broker_reconnects_total',
      'outpost_model_memory_budget_bytes',
      'outpost_frame_gate_drops_total',
      'outpost_jobs_finished_total',
      'outpost_gateway_info',
    ]) {
      expect(m.has(absent), absent).toBe(false);
    }
  });

  it('skips values that are not numbers rather than failing the scrape', () => {
    const odd = {
      ingest: { accepted: { sensors: 'many', frames: Number.NaN, audio: 2 }, duplicates: -1 },
      memory: { rssBytes: null },
      jobs: { queued: 'x', running: 1, waiting: [{ state: 'queued' }, null] },
    } as unknown as GatewayStatusSnapshot;
    const m = parse(renderGatewayMetrics(odd, new MetricsRegistry(), NOW));
    expect(m.get('outpost_ingest_messages_total')!.samples).toEqual([
      { name: 'outpost_ingest_messages_total', labels: { route: 'audio' }, value: 2 },
    ]);
    expect(m.has('outpost_ingest_duplicates_total')).toBe(false);
    expect(m.has('outpost_process_resident_memory_bytes')).toBe(false);
    expect(value(m, 'outpost_jobs', { state: 'running' })).toBe(1);
    expect(m.has('outpost_jobs_waiting')).toBe(false);
  });

  it('takes the daemon status object as it is typed', () => {
    const status: Record<string, unknown> = STATUS;
    expect(() => parse(renderGatewayMetrics(status, new MetricsRegistry(), NOW))).not.toThrow();
  });
});

describe('MetricsRegistry.observeJob', () => {
  it('feeds the duration and tokens-per-second histograms by kind', () => {
    const registry = new MetricsRegistry({ jobDurationBuckets: [1, 5, 30], tokensPerSecondBuckets: [4, 8] });
    registry.observeJob({ kind: 'frame', seconds: 3, tokens: 60, generationMs: 10_000 });
    registry.observeJob({ kind: 'frame', seconds: 12, tokens: 70, generationMs: 7_000 });
    registry.observeJob({ kind: 'frame', seconds: 45, tokens: 0, generationMs: 0 });
    registry.observeJob({ kind: 'audio', seconds: 0.5 });
    registry.observeJob({ kind: 'audio', seconds: Number.NaN, tokens: -3 });
    const m = parse(renderGatewayMetrics({}, registry, NOW));

    const bucket = (le: string, kind = 'frame') =>
      value(m, 'outpost_job_duration_seconds_bucket', { kind, le });
    expect([bucket('1'), bucket('5'), bucket('30'), bucket('+Inf')]).toEqual([0, 1, 2, 3]);
    expect(value(m, 'outpost_job_duration_seconds_count', { kind: 'frame' })).toBe(3);
    expect(value(m, 'outpost_job_duration_seconds_sum', { kind: 'frame' })).toBe(60);
    expect([bucket('1', 'audio'), bucket('+Inf', 'audio')]).toEqual([1, 1]);

    const tps = (le: string) => value(m, 'outpost_job_tokens_per_second_bucket', { kind: 'frame', le });
    // 6 and 10 tokens/s; the job without generation time has no speed
    expect([tps('4'), tps('8'), tps('+Inf')]).toEqual([0, 1, 2]);
    expect(value(m, 'outpost_job_tokens_per_second_sum', { kind: 'frame' })).toBe(16);
    expect(value(m, 'outpost_job_tokens_per_second_count', { kind: 'audio' })).toBeUndefined();
    expect(value(m, 'outpost_job_generated_tokens_total', { kind: 'frame' })).toBe(130);
    expect(value(m, 'outpost_job_generation_seconds_total', { kind: 'frame' })).toBe(17);
  });
});

describe('the test parser', () => {
  it('refuses what the format forbids', () => {
    const ok = '# HELP a x\n# TYPE a counter\na_total 1\n';
    expect(() => parse(ok)).toThrow(/no declared family/);
    const bad = [
      '# HELP a x\n# TYPE a gauge\na 1',
      '# HELP a x\n# HELP a y\n# TYPE a gauge\na 1\n',
      '# TYPE a gauge\n# TYPE a gauge\na 1\n',
      '# TYPE a gauge\na{l="x} 1\n',
      '# TYPE a gauge\na{l="\\t"} 1\n',
      '# TYPE a gauge\n# TYPE b gauge\nb 1\na 1\n',
      '# TYPE a gauge\na 1\na 2\n',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    ];
    for (const text of bad) expect(() => parse(text), JSON.stringify(text)).toThrow();
  });
});

describe('metric primitives', () => {
  it('round-trips label values and HELP text through their escapes', () => {
    const tricky = ['back\\slash', 'say "hi"', 'two\nlines', '\\"\n\\n', 'ünï €', ''];
    const gauge = new Gauge({
      name: 'test_value',
      help: 'A \\ backslash\nand a "quote".',
      labelNames: ['v'],
    });
    for (const [i, v] of tricky.entries()) gauge.set({ v }, i);
    const m = parse(renderMetrics([gauge]));
    expect(m.get('test_value')!.help).toBe('A \\ backslash\nand a "quote".');
    for (const [i, v] of tricky.entries()) expect(value(m, 'test_value', { v }), JSON.stringify(v)).toBe(i);
  });

  it('writes cumulative buckets ending in +Inf equal to _count', () => {
    const h = new Histogram({ name: 'test_seconds', help: 'h', labelNames: ['k'], buckets: [0.1, 1, 10] });
    for (const x of [0.05, 0.1, 0.5, 2, 20, 1000]) h.observe({ k: 'a' }, x);
    const text = renderMetrics([h]);
    expect(text).toContain('test_seconds_bucket{k="a",le="0.1"} 2\n');
    expect(text).toContain('test_seconds_bucket{k="a",le="+Inf"} 6\n');
    expect(h.get({ k: 'a' })).toEqual({ count: 6, sum: 1022.65 });
    expect(() => parse(text)).not.toThrow();
    const unlabelled = new Histogram({ name: 'test_empty', help: 'h', buckets: [] });
    expect(renderMetrics([unlabelled])).toBe(
      '# HELP test_empty h\n# TYPE test_empty histogram\ntest_empty_bucket{le="+Inf"} 0\n' +
        'test_empty_sum 0\ntest_empty_count 0\n',
    );
  });

  it('shows an unlabelled counter at 0 and formats special values', () => {
    const c = new Counter({ name: 'test_total', help: 'c' });
    const g = new Gauge({ name: 'test_gauge', help: 'g', labelNames: ['x'] });
    g.set({ x: 'inf' }, Number.POSITIVE_INFINITY);
    g.set({ x: 'neg' }, -2.5);
    g.inc({ x: 'neg' });
    expect(renderMetrics([g, c])).toBe(
      '# HELP test_gauge g\n# TYPE test_gauge gauge\ntest_gauge{x="inf"} +Inf\ntest_gauge{x="neg"} -1.5\n' +
        '# HELP test_total c\n# TYPE test_total counter\ntest_total 0\n',
    );
    expect(c.get()).toBe(0);
  });

  it('refuses invalid names, labels, buckets and values', () => {
    const definition = (f: () => unknown) => expect(f).toThrow(MetricDefinitionError);
    definition(() => new Counter({ name: '1st_total', help: '' }));
    definition(() => new Counter({ name: 'has-dash', help: '' }));
    definition(() => new Gauge({ name: 'ok', help: '', labelNames: ['bad-label'] }));
    definition(() => new Gauge({ name: 'ok', help: '', labelNames: ['__reserved'] }));
    definition(() => new Gauge({ name: 'ok', help: '', labelNames: ['a', 'a'] }));
    definition(() => new Histogram({ name: 'ok', help: '', labelNames: ['le'] }));
    definition(() => new Histogram({ name: 'ok', help: '', buckets: [1, 1] }));
    definition(() => new Histogram({ name: 'ok', help: '', buckets: [2, 1] }));
    definition(() => new Histogram({ name: 'ok', help: '', buckets: [Number.NaN] }));

    const registry = new MetricsRegistry();
    registry.histogram({ name: 'test_latency', help: '' });
    definition(() => registry.counter({ name: 'test_latency_count', help: '' }));
    definition(() => registry.gauge({ name: 'test_latency', help: '' }));
    definition(() => registry.counter({ name: 'outpost_job_generated_tokens_total', help: '' }));

    const c = registry.counter({ name: 'test_total', help: '', labelNames: ['route'] });
    const sample = (f: () => unknown) => expect(f).toThrow(MetricSampleError);
    sample(() => c.inc({ route: 'a' }, -1));
    sample(() => c.inc({ route: 'a' }, Number.NaN));
    sample(() => c.inc());
    sample(() => c.inc({ route: 'a', extra: 'b' }));
    sample(() => c.inc({ other: 'a' }));
    sample(() => new Gauge({ name: 'g', help: '' }).set(Number.NaN));
    expect(renderMetrics([c])).toBe('# HELP test_total \n# TYPE test_total counter\n');
  });
});
