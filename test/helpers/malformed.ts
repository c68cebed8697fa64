/**
 * A seeded generator of malformed MQTT payloads for the default ingest routes (test/daemon/malformed.test.ts).
 * Every payload is invalid by construction, for a reason the pipeline checks: a strict prefix of a JSON
 * object never closes it, a non-ASCII byte alone between ASCII bytes is never UTF-8, a WAV whose format
 * tag, channel count, bit depth or block align has one bit flipped no longer agrees with itself, and so
 * on (each builder says why). What a decoder may legitimately tolerate is not generated: sharp decodes a
 * PNG whose IEND trailer is cut, so PNG truncations stop before it; a flipped bit in a sample rate or in
 * pixel data still makes a valid file, so flips land only on magic numbers, chunk ids, format fields and
 * closing braces.
 */
import sharp from 'sharp';
import { mulberry32, writeWavHeader } from '../../src/common/index.js';

export const MALFORMED_ROUTES = ['sensor-metric', 'sensor-device', 'camera-frame', 'audio-clip'] as const;
export type MalformedRoute = (typeof MALFORMED_ROUTES)[number];

export const MALFORMED_CATEGORIES = [
  'truncated',
  'bit-flip',
  'wrong-type',
  'huge',
  'deep-nesting',
  'invalid-utf8',
  'empty',
  'non-finite',
  'garbage-after-magic',
  'absurd-wav-header',
  'bad-envelope',
] as const;
export type MalformedCategory = (typeof MALFORMED_CATEGORIES)[number];

export interface MalformedMessage {
  route: MalformedRoute;
  topic: string;
  category: MalformedCategory;
  payload: Buffer;
}

/** Valid media that the builders damage. */
export interface MediaSamples {
  jpeg: Buffer;
  png: Buffer;
  webp: Buffer;
  /** 16 kHz mono 16-bit PCM WAV with the canonical 44-byte header */
  wav: Buffer;
}

export interface MalformedOptions {
  seed: number;
  /** messages in all, huge ones included */
  count: number;
  samples: MediaSamples;
  /** each route's payload limit, bytes */
  limits: Record<MalformedRoute, number>;
  /** payloads just over a route's limit, spread over the routes in turn; default 8 */
  huge?: number;
}

/** Small valid JPEG, PNG, WebP and WAV samples; deterministic for a given sharp build. */
export async function mediaSamples(): Promise<MediaSamples> {
  const width = 64;
  const height = 48;
  const pixels = Buffer.alloc(width * height * 3);
  const noise = mulberry32(7);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i % 97) + Math.floor(noise() * 128);
  const image = () => sharp(pixels, { raw: { width, height, channels: 3 } });
  const frames = 8000; // 0.5 s at 16 kHz
  const wav = Buffer.alloc(44 + frames * 2);
  writeWavHeader(wav, 16_000, 1, frames);
  for (let i = 0; i < frames; i++) {
    wav.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16_000)), 44 + i * 2);
  }
  return {
    jpeg: await image().jpeg().toBuffer(),
    png: await image().png().toBuffer(),
    webp: await image().webp().toBuffer(),
    wav,
  };
}

type Builder = (g: Draw) => Buffer;

/** The seeded source every builder draws from. */
class Draw {
  readonly #next: () => number;
  constructor(
    seed: number,
    readonly samples: MediaSamples,
    readonly limits: Record<MalformedRoute, number>,
  ) {
    this.#next = mulberry32(seed);
  }
  /** integer in [lo, hi] */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.#next() * (hi - lo + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(0, 255);
    return out;
  }
  /** a finite decimal number as JSON writes it */
  number(): string {
    return String(Math.round((this.#next() * 200 - 100) * 100) / 100);
  }
}

const text = (s: string) => Buffer.from(s, 'utf8');
const b64 = (bytes: Buffer) => bytes.toString('base64');

/** Byte sequences that are not UTF-8 wherever they stand between ASCII bytes. */
const BAD_UTF8: readonly (readonly number[])[] = [
  [0xff], // never in UTF-8
  [0xfe],
  [0x80], // continuation byte with no lead
  [0xbf],
  [0xc0, 0xaf], // overlong '/'
  [0xc1, 0xbf], // overlong
  [0xe0, 0x80, 0xaf], // overlong
  [0xed, 0xa0, 0x80], // UTF-16 surrogate
  [0xf4, 0x90, 0x80, 0x80], // past U+10FFFF
  [0xf5, 0x80, 0x80, 0x80], // lead byte past U+10FFFF
  [0xc3], // two-byte lead, then an ASCII byte
  [0xe2, 0x82], // three-byte sequence cut short
];

/** Inserts one invalid UTF-8 sequence at a random place of an ASCII text. */
function withBadUtf8(g: Draw, ascii: string, at = g.int(0, ascii.length)): Buffer {
  return Buffer.concat([text(ascii.slice(0, at)), Buffer.from(g.pick(BAD_UTF8)), text(ascii.slice(at))]);
}

/** A strict prefix of a JSON object text: its closing brace is always missing. */
function truncatedObject(g: Draw, json: string): Buffer {
  return text(json.slice(0, g.int(1, json.length - 1)));
}

/** Flips the bit `bit` (0-7) of byte `at` of `bytes`, in place. */
function flip(bytes: Buffer, at: number, bit: number): Buffer {
  bytes[at] = bytes[at]! ^ (1 << bit);
  return bytes;
}

/**
 * One bit flipped in the last byte of a flat JSON object (no '}' inside it): the object can no longer close,
 * since none of '}' ^ (1 << k) is '}' or whitespace.
 */
function flippedBrace(g: Draw, json: string): Buffer {
  const out = text(json);
  return flip(out, out.length - 1, g.int(0, 7));
}

/** One non-ASCII byte in an ASCII text: a lone lead or continuation byte, never UTF-8. */
function highBitSet(g: Draw, json: string): Buffer {
  const out = text(json);
  const at = g.int(0, out.length - 1);
  out[at] = out[at]! | 0x80;
  return out;
}

const ISO = '"2024-05-01T12:00:00Z"';
const METRICS = ['temperature', 'humidity', 'pressure', 'co2', 'flow'];
const UNITS = ['C', '%', 'kPa', 'ppm', 'l/min'];

// ---- sensors ---------------------------------------------------------------------------------------

function metricObject(g: Draw): string {
  return g.pick([
    () => `{"value":${g.number()}}`,
    () => `{"value":${g.number()},"unit":"${g.pick(UNITS)}"}`,
    () => `{"value":${g.number()},"unit":"${g.pick(UNITS)}","ts":${ISO}}`,
    () => `{"ts":1714564800000,"value":${g.number()}}`,
  ])();
}

function deviceObject(g: Draw): string {
  const n = g.int(1, 4);
  const fields = METRICS.slice(0, n).map((m) => `"${m}":${g.number()}`);
  if (g.int(0, 1) === 1) fields.push(`"ts":${ISO}`);
  return `{${fields.join(',')}}`;
}

/** Deeply nested JSON: arrays (closed or not) or objects of objects; `max` bounds the depth. */
function nested(g: Draw, max: number, inner: (deep: string) => string = (deep) => deep): Buffer {
  return g.pick([
    () => {
      const d = g.int(1000, max);
      return text(inner(`${'['.repeat(d)}${']'.repeat(d)}`));
    },
    () => text('['.repeat(g.int(1000, max))),
    () => {
      const d = g.int(1000, Math.floor(max / 3));
      return text(inner(`${'{"a":'.repeat(d)}1${'}'.repeat(d)}`));
    },
  ])();
}

/** Bytes that begin like a JPEG, PNG or RIFF file and go on with noise. */
function magicThenGarbage(g: Draw): Buffer {
  const magic = g.pick([
    [0xff, 0xd8, 0xff],
    [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    [...text('RIFF'), 0x24, 0x08, 0, 0, ...text('WAVE')],
    [...text('RIFF'), 0x24, 0x08, 0, 0, ...text('WEBP')],
  ]);
  return Buffer.concat([Buffer.from(magic), g.bytes(g.int(1, 2048))]);
}

const EMPTY = [() => Buffer.alloc(0), () => text(' '), () => text('\r\n'), () => text(' \t\n ')];

function sensorBuilders(shape: 'metric' | 'device'): Partial<Record<MalformedCategory, Builder>> {
  const object = shape === 'metric' ? metricObject : deviceObject;
  const field = (g: Draw) => (shape === 'metric' ? 'value' : g.pick(METRICS));
  return {
    truncated: (g) => truncatedObject(g, object(g)),
    'bit-flip': (g) => (g.int(0, 1) === 0 ? flippedBrace(g, object(g)) : highBitSet(g, object(g))),
    'wrong-type': (g) => {
      const f = field(g);
      const wrong = g.pick([
        '"21.5"',
        'true',
        'false',
        'null',
        '[21.5]',
        '{"v":"1"}',
        `"${'x'.repeat(g.int(1, 60_000))}"`,
      ]);
      const common = [`{"${f}":${wrong}}`, wrong, `{"${f}":1,"ts":${g.pick(['true', '{"ms":1}', '[1]'])}}`];
      const own =
        shape === 'metric'
          ? [
              '{}',
              '{"unit":"C"}',
              `{"value":1,"unit":${g.pick(['7', '["C"]', 'null'])}}`,
              '{"value":1,"x":2}',
            ]
          : ['21.5', '{"ts":1714564800000}', '{"unit":"C"}'];
      return text(g.pick([...common, ...own]));
    },
    'deep-nesting': (g) =>
      nested(g, 32_000, (deep) => (g.int(0, 1) === 0 ? deep : `{"${field(g)}":${deep}}`)),
    'invalid-utf8': (g) => withBadUtf8(g, object(g)),
    empty: (g) => g.pick(EMPTY)(),
    'non-finite': (g) => {
      const value = g.pick([
        'NaN',
        'Infinity',
        '-Infinity',
        `${g.int(1, 9)}e${g.int(309, 99_999)}`,
        `-${g.int(1, 9)}e${g.int(309, 99_999)}`,
        `${g.int(2, 9)}e300`,
      ]);
      return text(g.int(0, 1) === 0 && shape === 'metric' ? value : `{"${field(g)}":${value}}`);
    },
    'garbage-after-magic': magicThenGarbage,
    huge: (g) => Buffer.alloc(g.limits[`sensor-${shape}`] + g.int(1, 1024), 0x31),
  };
}

// ---- frames ----------------------------------------------------------------------------------------

function imageEnvelope(g: Draw): string {
  const image = b64(g.samples.jpeg);
  return g.pick([
    () => `{"image":"${image}"}`,
    () => `{"image":"${image}","ts":${ISO}}`,
    () => `{"ts":1714564800000,"image":"${image}","prompt":"what is at the gate?"}`,
    () => `{"image":"data:image/jpeg;base64,${image}","force":true}`,
  ])();
}

/** Where a PNG's IEND chunk starts: sharp decodes a PNG cut inside it, so cuts stop before. */
function pngImageEnd(png: Buffer): number {
  return png.lastIndexOf('IEND') - 4;
}

/** A strict prefix of an encoded image that every decoder refuses. */
function truncatedImage(g: Draw): Buffer {
  const { jpeg, png, webp } = g.samples;
  return g.pick([
    () => jpeg.subarray(0, g.int(1, jpeg.length - 2)), // at least the end-of-image marker is gone
    () => png.subarray(0, g.int(1, pngImageEnd(png) - 1)), // image data cut
    () => webp.subarray(0, g.int(1, webp.length - 1)), // fewer bytes than its RIFF size says
  ])();
}

/** One bit flipped in an image's magic number: it is no longer a JPEG, PNG or WebP. */
function flippedImageMagic(g: Draw): Buffer {
  const [image, magic] = g.pick([
    [g.samples.jpeg, [0, 1, 2]],
    [g.samples.png, [0, 1, 2, 3, 4, 5, 6, 7]],
    [g.samples.webp, [0, 1, 2, 3, 8, 9, 10, 11]],
  ] as const);
  return flip(Buffer.from(image), g.pick(magic), g.int(0, 7));
}

const BAD_BASE64 = (g: Draw, valid: string): string =>
  g.pick([
    () => '!!!!',
    () => `${valid.slice(0, 40)}*${valid.slice(40)}`, // a character outside the alphabet
    () => `${valid.slice(0, 4 * g.int(1, 10))}A`, // length 4n + 1: no byte ends there
    () => `${valid.slice(0, 8)}=${valid.slice(8)}`, // padding in the middle
    () => `data:image/jpeg;base64,${valid.slice(0, 12)}%%%%`,
    () => 'üüüü',
  ])();

/** A JSON envelope `{"<field>": ...}` whose JSON shape or field types are wrong; `valid` is good base64. */
function wrongEnvelopeType(g: Draw, field: string, valid: string): Buffer {
  return text(
    g.pick([
      `{"${field}":123}`,
      `{"${field}":true}`,
      `{"${field}":null}`,
      `{"${field}":["${valid}"]}`,
      `{"${field}":{"data":"${valid}"}}`,
      '{}',
      `{"data":"${valid}"}`,
      `{"${field}":""}`,
      `{"${field}":"${valid}","prompt":42}`,
      `{"${field}":"${valid}","prompt":["describe"]}`,
      `{"${field}":"${valid}","prompt":"${'p'.repeat(2001)}"}`,
      `{"${field}":"${valid}","ts":true}`,
      `{"${field}":"${valid}","ts":"yesterday"}`,
      `{"${field}":"${valid}","ts":{"ms":1}}`,
      `{"${field}":"${valid}","ts":-1}`,
      '[1,2,3]', // not an object: taken as raw bytes, and no media starts with '['
      '"just a string"',
      '12345',
    ]),
  );
}

/** Non-finite numbers where the envelope wants a finite one. */
function nonFiniteEnvelope(g: Draw, field: string, valid: string, extra: readonly string[]): Buffer {
  const value = g.pick(['NaN', 'Infinity', '-Infinity', `1e${g.int(309, 9999)}`, `-1e${g.int(309, 9999)}`]);
  return text(`{"${field}":"${valid}","${g.pick(['ts', ...extra])}":${value}}`);
}

/** An envelope with an invalid UTF-8 sequence: in its media, its prompt, a key, or anywhere. */
function invalidUtf8Envelope(g: Draw, json: string): Buffer {
  const prompt = json.indexOf('"prompt":"');
  const at = g.pick([
    () => g.int(0, json.length),
    () => json.indexOf('":"') + 3 + g.int(0, 40), // inside the base64
    () => 2, // inside the first key
    () => (prompt >= 0 ? prompt + 10 : json.length - 1),
  ])();
  return withBadUtf8(g, json, at);
}

const frameBuilders: Partial<Record<MalformedCategory, Builder>> = {
  truncated: (g) => (g.int(0, 1) === 0 ? truncatedImage(g) : truncatedObject(g, imageEnvelope(g))),
  'bit-flip': (g) => (g.int(0, 1) === 0 ? flippedImageMagic(g) : flippedBrace(g, imageEnvelope(g))),
  'wrong-type': (g) => wrongEnvelopeType(g, 'image', b64(g.samples.jpeg)),
  'deep-nesting': (g) => nested(g, 50_000, (deep) => (g.int(0, 1) === 0 ? deep : `{"image":${deep}}`)),
  'invalid-utf8': (g) =>
    g.int(0, 3) === 0
      ? Buffer.from(g.pick(BAD_UTF8).concat(...g.pick(BAD_UTF8)))
      : invalidUtf8Envelope(g, imageEnvelope(g).replace('}', ',"prompt":"the gate"}')),
  empty: (g) => g.pick(EMPTY)(),
  'non-finite': (g) => nonFiniteEnvelope(g, 'image', b64(g.samples.jpeg), ['force']),
  'garbage-after-magic': (g) =>
    g.int(0, 3) === 0 ? text(`{"image":"${b64(magicThenGarbage(g))}"}`) : magicThenGarbage(g),
  'bad-envelope': (g) => {
    const valid = b64(g.samples.jpeg);
    return g.int(0, 3) === 0
      ? text(`{"image":"${b64(g.bytes(g.int(1, 512)))}"}`) // good base64 of noise: no image
      : text(`{"image":"${BAD_BASE64(g, valid)}"}`);
  },
  huge: (g) => {
    const size = g.limits['camera-frame'] + g.int(1, 1024);
    const out = Buffer.alloc(size, 0x41);
    if (g.int(0, 1) === 0) out.set([0xff, 0xd8, 0xff]);
    else out.set(text('{"image":"'));
    return out;
  },
};

// ---- audio -----------------------------------------------------------------------------------------

function audioEnvelope(g: Draw): string {
  const { wav } = g.samples;
  return g.pick([
    () => `{"audio":"${b64(wav)}"}`,
    () => `{"audio":"${b64(wav)}","format":"wav","ts":${ISO}}`,
    () => `{"format":"s16le","rate":16000,"channels":1,"audio":"${b64(wav.subarray(44))}"}`,
    () => `{"audio":"${b64(wav)}","prompt":"who is speaking?"}`,
  ])();
}

/**
 * Byte offsets of a canonical WAV header where any single bit flip breaks it: the RIFF, WAVE, 'fmt ' and
 * 'data' ids, the format tag (1 ^ bit is never PCM), the channel count (0, or more channels than the
 * block align holds), the block align and the bit depth (they no longer agree).
 */
const WAV_FRAGILE_BYTES = [
  0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 20, 21, 22, 23, 32, 33, 34, 35, 36, 37, 38, 39,
];

/** A canonical 16-bit mono WAV with one header field made absurd. */
function absurdWav(g: Draw): Buffer {
  const out = Buffer.from(g.samples.wav);
  g.pick([
    () => out.writeUInt16LE(0, 22), // no channels
    () => out.writeUInt16LE(g.int(33, 65_535), 22), // past any channel limit
    () => out.writeUInt32LE(g.int(0, 999), 24), // sample rate below 1 kHz
    () => out.writeUInt32LE(g.int(400_000, 0xffffffff), 24), // sample rate past 384 kHz
    () => out.writeUInt16LE(g.pick([0, 1, 7, 12, 20, 33, 64, 65_535]), 34), // no such PCM bit depth
    () => out.writeUInt16LE(g.pick([0, 1, 3, 4, 65_535]), 32), // block align against 1 ch x 16 bit
    () => out.writeUInt32LE(g.int(0x01000001, 0x7fff0000), 40), // 'data' claims more than any payload (no placeholder)
    () => out.writeUInt32LE(out.length - 44 + 2 * g.int(1, 1000), 40), // 'data' claims more than arrived
    () => out.writeUInt32LE(g.int(0, 15), 16), // 'fmt ' too short
    () => out.writeUInt32LE(g.int(0x01000001, 0xffffffff), 16), // 'fmt ' longer than the payload
    () => out.writeUInt16LE(g.pick([0x0002, 0x0006, 0x0007, 0x0011, 0x0055, 0x00ff, 0xf1ac]), 20), // codec
    () => out.writeUInt16LE(0xfffe, 20), // WAVE_FORMAT_EXTENSIBLE in a 16-byte 'fmt '
    () => out.write('data', 12, 'ascii'), // 'data' before 'fmt '
  ])();
  return out;
}

const audioBuilders: Partial<Record<MalformedCategory, Builder>> = {
  truncated: (g) =>
    g.int(0, 1) === 0
      ? g.samples.wav.subarray(0, g.int(1, g.samples.wav.length - 1)) // 'data' says more than arrived
      : truncatedObject(g, audioEnvelope(g)),
  'bit-flip': (g) => {
    if (g.int(0, 1) === 1) return flippedBrace(g, audioEnvelope(g));
    return flip(Buffer.from(g.samples.wav), g.pick(WAV_FRAGILE_BYTES), g.int(0, 7));
  },
  'wrong-type': (g) => {
    const { wav } = g.samples;
    if (g.int(0, 2) > 0) return wrongEnvelopeType(g, 'audio', b64(wav));
    const pcm = b64(wav.subarray(44));
    return text(
      g.pick([
        `{"audio":"${b64(wav)}","format":7}`,
        `{"audio":"${b64(wav)}","format":"mp3"}`,
        `{"audio":"${b64(wav)}","format":["wav"]}`,
        `{"audio":"${pcm}","format":"L16"}`,
        `{"audio":"${pcm}","format":"s16le","rate":"16000"}`,
        `{"audio":"${pcm}","format":"s16le","rate":16000.5}`,
        `{"audio":"${pcm}","format":"s16le","rate":16000,"channels":"1"}`,
        `{"audio":"${pcm}","format":"s16le","rate":16000,"channels":0}`,
        `{"audio":"${pcm}","format":"f32le","rate":-16000}`,
      ]),
    );
  },
  'deep-nesting': (g) => nested(g, 50_000, (deep) => (g.int(0, 1) === 0 ? deep : `{"audio":${deep}}`)),
  'invalid-utf8': (g) =>
    g.int(0, 3) === 0
      ? Buffer.from(g.pick(BAD_UTF8).concat(...g.pick(BAD_UTF8)))
      : invalidUtf8Envelope(g, audioEnvelope(g).replace('}', ',"prompt":"the door"}')),
  empty: (g) => g.pick(EMPTY)(),
  'non-finite': (g) =>
    g.int(0, 1) === 0
      ? nonFiniteEnvelope(g, 'audio', b64(g.samples.wav), ['rate', 'channels'])
      : nonFiniteEnvelope(g, 'audio', b64(g.samples.wav.subarray(44)), ['rate', 'channels']),
  'garbage-after-magic': (g) =>
    g.int(0, 3) === 0 ? text(`{"audio":"${b64(magicThenGarbage(g))}"}`) : magicThenGarbage(g),
  'absurd-wav-header': (g) => (g.int(0, 3) === 0 ? text(`{"audio":"${b64(absurdWav(g))}"}`) : absurdWav(g)),
  'bad-envelope': (g) => {
    const valid = b64(g.samples.wav);
    return g.int(0, 3) === 0
      ? text(`{"audio":"${b64(g.bytes(g.int(1, 512)))}"}`)
      : text(`{"audio":"${BAD_BASE64(g, valid)}"}`);
  },
  huge: (g) => {
    const size = g.limits['audio-clip'] + g.int(1, 1024);
    const out = Buffer.alloc(size, 0);
    if (g.int(0, 1) === 0) out.set(text('RIFF'));
    else out.set(text('{"audio":"'));
    return out;
  },
};

const BUILDERS: Record<MalformedRoute, Partial<Record<MalformedCategory, Builder>>> = {
  'sensor-metric': sensorBuilders('metric'),
  'sensor-device': sensorBuilders('device'),
  'camera-frame': frameBuilders,
  'audio-clip': audioBuilders,
};

const DEVICES = ['pump1', 'pump2', 'boiler', 'tank-a', 'fan_3'];

function topicFor(g: Draw, route: MalformedRoute): string {
  const n = g.int(0, 7);
  switch (route) {
    case 'sensor-metric':
      return `sensors/${g.pick(DEVICES)}/${g.pick(METRICS)}`;
    case 'sensor-device':
      return `sensors/${g.pick(DEVICES)}`;
    case 'camera-frame':
      return `cameras/cam${n}/frame`;
    case 'audio-clip':
      return `audio/mic${n}/clip`;
  }
}

/**
 * `count` malformed messages over the four default routes, lazily (a huge one is made only when its turn
 * comes, and can be dropped once sent). Routes and categories are drawn uniformly; `huge` of them, at
 * seeded places, are just over their route's limit. The same options always give the same messages.
 */
export function* malformedMessages(options: MalformedOptions): Generator<MalformedMessage> {
  const g = new Draw(options.seed, options.samples, options.limits);
  const huge = new Set<number>();
  while (huge.size < Math.min(options.huge ?? 8, options.count)) huge.add(g.int(0, options.count - 1));
  let hugeTurn = 0;
  for (let i = 0; i < options.count; i++) {
    let route: MalformedRoute;
    let category: MalformedCategory;
    if (huge.has(i)) {
      route = MALFORMED_ROUTES[hugeTurn++ % MALFORMED_ROUTES.length]!;
      category = 'huge';
    } else {
      route = g.pick(MALFORMED_ROUTES);
      const choices = Object.keys(BUILDERS[route]).filter((c) => c !== 'huge') as MalformedCategory[];
      category = g.pick(choices);
    }
    const payload = BUILDERS[route][category]!(g);
    yield { route, topic: topicFor(g, route), category, payload };
  }
}
