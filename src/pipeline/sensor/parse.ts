import type { SensorParseResult, SensorReading, SensorRejectCode } from './types.js';

/** One MQTT message routed to the sensor pipeline. */
export interface SensorMessage {
  /** Values captured by the route's wildcards: [device] or [device, metric] (more captures: joined with '/' into the metric). */
  captures: readonly string[];
  /** Raw MQTT payload bytes. */
  payload: Uint8Array;
  /** MQTT v5 content type, when the publisher set one. An empty string counts as not set. */
  contentType?: string;
  /** Epoch ms when the gateway received the message; used as the sample time when the payload has no `ts`. */
  receivedAt: number;
}

/** Bounds on accepted sample times. */
export interface TimestampLimits {
  /** Earliest accepted ts, epoch ms (e.g. 2000-01-01). No default. */
  minTs: number;
  /** How far past `receivedAt` a ts may be, ms; absorbs clock skew between sensor and gateway. No default. */
  maxFutureMs: number;
}

type Rejection = Extract<SensorParseResult, { ok: false }>;
type Check<T> = { ok: true; value: T } | Rejection;

const MAX_NAME_LENGTH = 128;
const MAX_UNIT_LENGTH = 32;
const MAX_MAGNITUDE = 1e300;
const MAX_REASON_LENGTH = 199;
/** ISO strings longer than this are not timestamps; refusing them early keeps Date.parse off junk. */
const MAX_TS_STRING_LENGTH = 64;
/** Payload text quoted in a reason is cut to this; two quotes never exceed the 40-char echo budget. */
const ECHO_CHARS = 20;
/** Date.parse also accepts things like "May 1" or "2024"; requiring a full calendar date up front rules those out. */
const ISO_DATE_PREFIX = /^[+-]?\d{4,6}-\d{2}-\d{2}/;
const SINGLE_FIELDS = new Set(['value', 'unit', 'ts']);

// fatal: true so that invalid UTF-8 is a rejection rather than silently turned into U+FFFD.
const utf8 = new TextDecoder('utf-8', { fatal: true });

function reject(code: SensorRejectCode, reason: string): Rejection {
  // Safety net: every reason below is built to be short, but names can be long.
  const clipped = reason.length > MAX_REASON_LENGTH ? reason.slice(0, MAX_REASON_LENGTH - 1) + '…' : reason;
  return { ok: false, code, reason: clipped };
}

/** Quotes at most `max` chars of `text` so reasons stay short and never replay a payload. */
function quote(text: string, max = ECHO_CHARS): string {
  return JSON.stringify(text.length > max ? text.slice(0, max) + '…' : text);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'string') return `string ${quote(value, 12)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  return typeof value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hasControlChar(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return true;
  }
  return false;
}

function isAcceptedContentType(contentType: string): boolean {
  const base = (contentType.split(';', 1)[0] ?? '').trim().toLowerCase();
  return (
    base === 'application/json' || base === 'text/plain' || (base.includes('/') && base.endsWith('+json'))
  );
}

function checkName(kind: 'device' | 'metric', name: string): Rejection | undefined {
  if (name.length === 0) return reject('bad-name', `${kind} name is empty`);
  const shown = quote(name);
  if (name.length > MAX_NAME_LENGTH) {
    return reject(
      'bad-name',
      `${kind} name ${shown} is ${name.length} chars; expected at most ${MAX_NAME_LENGTH}`,
    );
  }
  // '+' and '#' are MQTT wildcards: a series named with them could never be subscribed to on its own.
  if (name.includes('+') || name.includes('#')) {
    return reject('bad-name', `${kind} name ${shown}: expected no MQTT wildcard ('+' or '#')`);
  }
  if (hasControlChar(name))
    return reject('bad-name', `${kind} name ${shown}: expected no control characters`);
  return undefined;
}

function checkValue(field: string, raw: unknown): Check<number> {
  if (typeof raw !== 'number') {
    return reject('wrong-type', `${field}: expected a finite number, found ${describe(raw)}`);
  }
  // JSON.parse turns overflowing literals like 1e309 into Infinity; near-overflow values break stats downstream.
  if (!Number.isFinite(raw) || Math.abs(raw) > MAX_MAGNITUDE) {
    return reject('non-finite', `${field}: expected a finite number within ±1e300, found ${String(raw)}`);
  }
  return { ok: true, value: raw };
}

function checkUnit(raw: unknown): Check<string | undefined> {
  if (typeof raw !== 'string') {
    return reject('wrong-type', `unit: expected a string, found ${describe(raw)}`);
  }
  if (raw.length > MAX_UNIT_LENGTH) {
    return reject('wrong-type', `unit: expected at most ${MAX_UNIT_LENGTH} chars, found ${raw.length}`);
  }
  if (hasControlChar(raw)) return reject('wrong-type', 'unit: expected no control characters');
  return { ok: true, value: raw === '' ? undefined : raw };
}

function isoOrNumber(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : String(ms);
}

function checkTs(raw: unknown, msg: SensorMessage, limits: TimestampLimits): Check<number> {
  const expected = 'expected epoch milliseconds or an ISO 8601 date-time like "2024-05-01T12:00:00Z"';
  let ts: number;
  let label: string;
  if (typeof raw === 'number') {
    if (!Number.isFinite(raw)) return reject('bad-timestamp', `ts: ${expected}, found ${String(raw)}`);
    ts = raw;
    label = String(raw);
  } else if (typeof raw === 'string') {
    label = quote(raw);
    if (raw.length > MAX_TS_STRING_LENGTH || !ISO_DATE_PREFIX.test(raw)) {
      return reject('bad-timestamp', `ts ${label}: ${expected}`);
    }
    ts = Date.parse(raw);
    if (Number.isNaN(ts)) return reject('bad-timestamp', `ts ${label}: not a valid ISO 8601 date-time`);
  } else {
    return reject('bad-timestamp', `ts: ${expected}, found ${describe(raw)}`);
  }

  const latest = msg.receivedAt + limits.maxFutureMs;
  if (ts < limits.minTs) {
    // A common publisher bug: seconds since epoch are ~1000x too small, so they land just after 1970.
    const seconds = typeof raw === 'number' && raw >= limits.minTs / 1000 && raw <= latest / 1000;
    const hint = seconds ? '; looks like epoch seconds; send milliseconds' : '';
    return reject(
      'bad-timestamp',
      `ts ${label}: before the earliest accepted time ${isoOrNumber(limits.minTs)}${hint}`,
    );
  }
  if (ts > latest) {
    const ahead = ts - msg.receivedAt;
    return reject(
      'bad-timestamp',
      `ts ${label}: ${ahead} ms ahead of the gateway clock; expected at most ${limits.maxFutureMs} ms`,
    );
  }
  return { ok: true, value: ts };
}

/** Parses the payload text; the message-level checks (content type, names, emptiness) come first. */
function decodeJson(payload: Uint8Array): Check<unknown> {
  if (payload.length === 0) return reject('empty', 'payload is empty; expected a JSON number or object');
  let text: string;
  try {
    text = utf8.decode(payload);
  } catch {
    return reject('not-json', 'payload is not valid UTF-8; expected JSON text');
  }
  const trimmed = text.trim();
  if (trimmed === '') return reject('empty', 'payload is only whitespace; expected a JSON number or object');
  try {
    return { ok: true, value: JSON.parse(trimmed) as unknown };
  } catch (err) {
    // RangeError: the engine ran out of stack on absurd nesting. Anything else is a syntax error.
    if (err instanceof RangeError) return reject('not-json', 'payload is not valid JSON: nested too deeply');
    const hint = /^[+-]?(NaN|Infinity)$/.test(trimmed) ? '; NaN and Infinity are not JSON numbers' : '';
    return reject('not-json', `payload is not valid JSON (starts with ${quote(trimmed)})${hint}`);
  }
}

function parseSingle(
  device: string,
  metric: string,
  body: unknown,
  msg: SensorMessage,
  limits: TimestampLimits,
): SensorParseResult {
  if (typeof body === 'number') {
    const value = checkValue('payload', body);
    if (!value.ok) return value;
    return { ok: true, readings: [{ device, metric, ts: msg.receivedAt, value: value.value }] };
  }
  if (!isRecord(body)) {
    return reject('wrong-type', `payload: expected a number or {"value": number}, found ${describe(body)}`);
  }
  for (const key of Object.keys(body)) {
    if (!SINGLE_FIELDS.has(key)) {
      return reject('wrong-type', `unexpected field ${quote(key)}; expected only "value", "unit" and "ts"`);
    }
  }
  if (!Object.hasOwn(body, 'value')) {
    return reject('wrong-type', 'payload: expected a "value" field holding a finite number, found none');
  }
  const value = checkValue('field "value"', body['value']);
  if (!value.ok) return value;
  const reading: SensorReading = { device, metric, ts: msg.receivedAt, value: value.value };
  if (Object.hasOwn(body, 'unit')) {
    const unit = checkUnit(body['unit']);
    if (!unit.ok) return unit;
    if (unit.value !== undefined) reading.unit = unit.value;
  }
  if (Object.hasOwn(body, 'ts')) {
    const ts = checkTs(body['ts'], msg, limits);
    if (!ts.ok) return ts;
    reading.ts = ts.value;
  }
  return { ok: true, readings: [reading] };
}

function parsePerDevice(
  device: string,
  body: unknown,
  msg: SensorMessage,
  limits: TimestampLimits,
): SensorParseResult {
  if (!isRecord(body)) {
    const hint = typeof body === 'number' ? ' (a bare number needs the metric in the topic)' : '';
    return reject(
      'wrong-type',
      `payload: expected an object of metrics like {"temperature": 21.5}, found ${describe(body)}${hint}`,
    );
  }
  const readings: SensorReading[] = [];
  let ts = msg.receivedAt;
  for (const key of Object.keys(body)) {
    const raw = body[key];
    if (key === 'ts') {
      const checked = checkTs(raw, msg, limits);
      if (!checked.ok) return checked;
      ts = checked.value;
      continue;
    }
    const badName = checkName('metric', key);
    if (badName) return badName;
    // Units only exist in the per-metric form; say so instead of a bare type error on "unit".
    if (key === 'unit' && typeof raw === 'string') {
      return reject(
        'wrong-type',
        'metric "unit": expected a finite number; units need topic sensors/<device>/<metric>',
      );
    }
    const value = checkValue(`metric ${quote(key)}`, raw);
    if (!value.ok) return value;
    readings.push({ device, metric: key, ts: 0, value: value.value });
  }
  if (readings.length === 0) {
    return reject('empty', 'payload has no metrics; expected at least one like {"temperature": 21.5}');
  }
  // ts may come after the metrics in key order, so it is applied once everything has been checked.
  for (const reading of readings) reading.ts = ts;
  return { ok: true, readings };
}

/**
 * Validates one sensor message and turns it into readings. The message is accepted or rejected as a whole,
 * so a publisher never sees half of a multi-metric message stored.
 */
export function parseSensorMessage(msg: SensorMessage, limits: TimestampLimits): SensorParseResult {
  const contentType = msg.contentType?.trim();
  if (contentType && !isAcceptedContentType(contentType)) {
    return reject(
      'content-type',
      `content type ${quote(contentType, 40)}: expected application/json, text/plain or a +json type`,
    );
  }

  const [device, ...rest] = msg.captures;
  if (device === undefined) return reject('bad-name', 'device name is missing from the topic');
  const badDevice = checkName('device', device);
  if (badDevice) return badDevice;
  const metric = rest.length > 0 ? rest.join('/') : undefined;
  if (metric !== undefined) {
    const badMetric = checkName('metric', metric);
    if (badMetric) return badMetric;
  }

  const body = decodeJson(msg.payload);
  if (!body.ok) return body;
  return metric === undefined
    ? parsePerDevice(device, body.value, msg, limits)
    : parseSingle(device, metric, body.value, msg, limits);
}
