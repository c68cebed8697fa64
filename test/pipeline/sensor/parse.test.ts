import { describe, expect, it } from 'vitest';
import { parseSensorMessage, type SensorMessage } from '../../../src/pipeline/sensor/parse.js';
import type { SensorParseResult, SensorRejectCode } from '../../../src/pipeline/sensor/types.js';

const RECEIVED = Date.parse('2024-05-01T12:00:00Z');
const LIMITS = { minTs: Date.parse('2000-01-01T00:00:00Z'), maxFutureMs: 5 * 60_000 };

function parse(
  captures: readonly string[],
  payload: string | Uint8Array,
  extra: Partial<SensorMessage> = {},
): SensorParseResult {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  return parseSensorMessage({ captures, payload: bytes, receivedAt: RECEIVED, ...extra }, LIMITS);
}

function rejected(result: SensorParseResult, code: SensorRejectCode): string {
  expect(result).toMatchObject({ ok: false, code });
  if (result.ok) throw new Error('expected a rejection');
  expect(result.reason.length).toBeLessThan(200);
  return result.reason;
}

describe('parseSensorMessage: per-metric topic (sensors/<device>/<metric>)', () => {
  it('accepts a bare JSON number, timed at receipt', () => {
    expect(parse(['pump-1', 'temperature'], '21.5')).toEqual({
      ok: true,
      readings: [{ device: 'pump-1', metric: 'temperature', ts: RECEIVED, value: 21.5 }],
    });
  });

  it('accepts an object with value, unit and an ISO timestamp', () => {
    const result = parse(
      ['pump-1', 'temperature'],
      '{"value": -3.25, "unit": "°C", "ts": "2024-05-01T11:59:00Z"}',
    );
    expect(result).toEqual({
      ok: true,
      readings: [
        { device: 'pump-1', metric: 'temperature', ts: RECEIVED - 60_000, value: -3.25, unit: '°C' },
      ],
    });
  });

  it('accepts an epoch-millisecond timestamp and ISO with an offset', () => {
    const ms = parse(['d', 'm'], JSON.stringify({ value: 1, ts: RECEIVED - 1234 }));
    expect(ms.ok && ms.readings[0]?.ts).toBe(RECEIVED - 1234);
    const offset = parse(['d', 'm'], '{"value": 1, "ts": "2024-05-01T14:00:00+02:00"}');
    expect(offset.ok && offset.readings[0]?.ts).toBe(RECEIVED);
  });

  it('joins extra captures into the metric name', () => {
    const result = parse(['d', 'engine', 'oil', 'pressure'], '2');
    expect(result.ok && result.readings[0]?.metric).toBe('engine/oil/pressure');
  });

  it('accepts JSON and text content types, with parameters', () => {
    for (const contentType of [
      'application/json',
      'text/plain; charset=utf-8',
      'application/senml+json',
      '',
    ]) {
      expect(parse(['d', 'm'], '1', { contentType }).ok).toBe(true);
    }
  });

  it('rejects a string where a number is expected, showing what was found', () => {
    expect(rejected(parse(['d', 'm'], '"21.5"'), 'wrong-type')).toContain('string "21.5"');
    expect(rejected(parse(['d', 'm'], '{"value":"NaN"}'), 'wrong-type')).toMatch(
      /"value".*finite number.*"NaN"/,
    );
  });

  it('rejects booleans, null, arrays and objects without value', () => {
    expect(rejected(parse(['d', 'm'], 'true'), 'wrong-type')).toContain('boolean');
    expect(rejected(parse(['d', 'm'], 'null'), 'wrong-type')).toContain('null');
    expect(rejected(parse(['d', 'm'], '[1,2]'), 'wrong-type')).toContain('array');
    expect(rejected(parse(['d', 'm'], '{"val": 1}'), 'wrong-type')).toContain('"val"');
    expect(rejected(parse(['d', 'm'], '{"unit": "C"}'), 'wrong-type')).toContain('"value"');
    expect(rejected(parse(['d', 'm'], '{"value": {"value": 1}}'), 'wrong-type')).toContain('object');
  });

  it('rejects a bad unit', () => {
    expect(rejected(parse(['d', 'm'], '{"value": 1, "unit": 5}'), 'wrong-type')).toContain('unit');
    expect(
      rejected(parse(['d', 'm'], JSON.stringify({ value: 1, unit: 'u'.repeat(33) })), 'wrong-type'),
    ).toContain('unit');
  });

  it('rejects 10,000-deep nesting without crashing', () => {
    const arrays = '['.repeat(10_000) + ']'.repeat(10_000);
    expect(rejected(parse(['d', 'm'], arrays), 'wrong-type')).toContain('array');
    const objects = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000);
    expect(rejected(parse(['d', 'm'], objects), 'wrong-type')).toContain('"a"');
  });
});

describe('parseSensorMessage: per-device topic (sensors/<device>)', () => {
  it('turns every key but ts into a reading sharing the timestamp', () => {
    const result = parse(['weather-3'], '{"temperature": 21.5, "humidity": 40, "ts": 1714564700000}');
    expect(result).toEqual({
      ok: true,
      readings: [
        { device: 'weather-3', metric: 'temperature', ts: 1714564700000, value: 21.5 },
        { device: 'weather-3', metric: 'humidity', ts: 1714564700000, value: 40 },
      ],
    });
  });

  it('uses receivedAt when ts is absent', () => {
    const result = parse(['weather-3'], '{"rain": 0}');
    expect(result.ok && result.readings[0]?.ts).toBe(RECEIVED);
  });

  it('rejects the whole message when one metric is bad, naming that metric', () => {
    const reason = rejected(
      parse(['w'], '{"humidity": 40, "temperature": "hot", "pressure": 1013}'),
      'wrong-type',
    );
    expect(reason).toBe('metric "temperature": expected a finite number, found string "hot"');
  });

  it('rejects nested objects and a unit field', () => {
    expect(rejected(parse(['w'], '{"wind": {"speed": 3}}'), 'wrong-type')).toContain('"wind"');
    expect(rejected(parse(['w'], '{"wind": 3, "unit": "m/s"}'), 'wrong-type')).toContain('unit');
  });

  it('rejects an object with no metrics as empty', () => {
    expect(rejected(parse(['w'], '{}'), 'empty')).toContain('no metrics');
    expect(rejected(parse(['w'], `{"ts": ${RECEIVED}}`), 'empty')).toContain('no metrics');
  });

  it('rejects a bare number, pointing at the per-metric topic', () => {
    expect(rejected(parse(['w'], '21.5'), 'wrong-type')).toContain('metric in the topic');
  });

  it('rejects metric keys that are not valid names', () => {
    expect(rejected(parse(['w'], '{"": 1}'), 'bad-name')).toContain('metric name is empty');
    expect(rejected(parse(['w'], '{"a+b": 1}'), 'bad-name')).toContain('"a+b"');
    expect(rejected(parse(['w'], '{"a\\u0000b": 1}'), 'bad-name')).toContain('control');
  });
});

describe('parseSensorMessage: rejections', () => {
  it('rejects empty and blank payloads', () => {
    rejected(parse(['d', 'm'], ''), 'empty');
    rejected(parse(['d', 'm'], ' \n\t'), 'empty');
  });

  it('rejects text that is not JSON, including NaN and Infinity', () => {
    expect(rejected(parse(['d', 'm'], 'not json'), 'not-json')).toContain('not valid JSON');
    expect(rejected(parse(['d', 'm'], 'NaN'), 'not-json')).toContain('NaN and Infinity are not JSON');
    rejected(parse(['d', 'm'], 'Infinity'), 'not-json');
    rejected(parse(['d', 'm'], '-Infinity'), 'not-json');
    rejected(parse(['w'], '{"t": NaN}'), 'not-json');
  });

  it('rejects invalid UTF-8', () => {
    expect(rejected(parse(['d', 'm'], new Uint8Array([0x32, 0xff, 0xfe])), 'not-json')).toContain('UTF-8');
  });

  it('rejects overflowing and absurdly large numbers', () => {
    expect(rejected(parse(['d', 'm'], '1e309'), 'non-finite')).toContain('Infinity');
    rejected(parse(['d', 'm'], '-1e309'), 'non-finite');
    expect(rejected(parse(['w'], '{"x": 1e301}'), 'non-finite')).toContain('"x"');
    expect(parse(['d', 'm'], '1e300').ok).toBe(true);
  });

  it('rejects epoch seconds, saying to send milliseconds', () => {
    const reason = rejected(parse(['d', 'm'], '{"value": 1, "ts": 1714564800}'), 'bad-timestamp');
    expect(reason).toContain('looks like epoch seconds; send milliseconds');
    // 1970-era milliseconds are merely too old, not seconds.
    expect(rejected(parse(['d', 'm'], '{"value": 1, "ts": 5}'), 'bad-timestamp')).not.toContain('seconds');
  });

  it('rejects timestamps far in the future but tolerates clock skew', () => {
    const reason = rejected(parse(['d', 'm'], '{"value": 1, "ts": "2099-01-01T00:00:00Z"}'), 'bad-timestamp');
    expect(reason).toContain('ahead of the gateway clock');
    expect(parse(['d', 'm'], JSON.stringify({ value: 1, ts: RECEIVED + 60_000 })).ok).toBe(true);
    rejected(parse(['d', 'm'], JSON.stringify({ value: 1, ts: RECEIVED + 5 * 60_000 + 1 })), 'bad-timestamp');
  });

  it('rejects timestamps that are not ISO dates or numbers', () => {
    expect(rejected(parse(['d', 'm'], '{"value": 1, "ts": "yesterday"}'), 'bad-timestamp')).toContain(
      '"yesterday"',
    );
    rejected(parse(['d', 'm'], '{"value": 1, "ts": "May 1, 2024"}'), 'bad-timestamp');
    rejected(parse(['d', 'm'], '{"value": 1, "ts": "2024-13-45T00:00:00Z"}'), 'bad-timestamp');
    expect(rejected(parse(['d', 'm'], '{"value": 1, "ts": true}'), 'bad-timestamp')).toContain('boolean');
    rejected(parse(['w'], '{"x": 1, "ts": null}'), 'bad-timestamp');
  });

  it('rejects content types that are neither JSON nor text', () => {
    expect(rejected(parse(['d', 'm'], '1', { contentType: 'image/jpeg' }), 'content-type')).toContain(
      'image/jpeg',
    );
    rejected(parse(['d', 'm'], '1', { contentType: 'application/octet-stream' }), 'content-type');
  });

  it('rejects bad device and metric names from the topic', () => {
    expect(rejected(parse([''], '{"x": 1}'), 'bad-name')).toContain('device name is empty');
    expect(rejected(parse(['a#b', 'm'], '1'), 'bad-name')).toContain('"a#b"');
    rejected(parse(['a+b', 'm'], '1'), 'bad-name');
    rejected(parse(['dev\n1', 'm'], '1'), 'bad-name');
    expect(rejected(parse(['d'.repeat(129), 'm'], '1'), 'bad-name')).toContain('129 chars');
    expect(parse(['d'.repeat(128), 'm'], '1').ok).toBe(true);
    rejected(parse(['d', ''], '1'), 'bad-name');
    rejected(parse([], '1'), 'bad-name');
  });

  it('never echoes more than 40 chars of a long payload', () => {
    const long = 'x'.repeat(500);
    const payloads: Array<[readonly string[], string]> = [
      [['d', 'm'], long],
      [['d', 'm'], JSON.stringify(long)],
      [['d', 'm'], JSON.stringify({ value: long })],
      [['d', 'm'], JSON.stringify({ value: 1, ts: long })],
      [['d', 'm'], JSON.stringify({ value: 1, [long]: 1 })],
      [['w'], JSON.stringify({ [long]: long })],
      [['w'], JSON.stringify({ [long.slice(0, 100)]: long })],
    ];
    for (const [captures, payload] of payloads) {
      const result = parse(captures, payload);
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.reason.length).toBeLessThan(200);
        expect(result.reason).not.toContain('x'.repeat(41));
      }
    }
  });
});
