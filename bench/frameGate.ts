/**
 * tsx bench/frameGate.ts
 *
 * Does tensor math pay for the frame gate? Scores the same 1000 pairs of 32x32 and of 64x64 grayscale images
 * with the plain typed-array `changeScore` Outpost uses and with the equivalent computation in
 * @tensorflow/tfjs on its wasm backend (median-corrected difference, fraction above the noise floor), side by
 * side in one run, checks both give the same scores, and reports microseconds per score and the RSS cost of
 * loading tfjs.
 */
import { mulberry32 } from '../src/common/index.js';
import { changeScore, DEFAULT_NOISE_FLOOR, type GrayImage } from '../src/pipeline/frame/changeScore.js';

const PAIRS = 1000;
const SIZES = [32, 64];
const REPEATS = 3;

const random = mulberry32(7);

/** A frame and a later one: noise, a brightness shift and sometimes an object. */
function pair(size: number): [GrayImage, GrayImage] {
  const n = size * size;
  const a = new Uint8Array(n);
  const b = new Uint8Array(n);
  const shift = Math.floor(random() * 40) - 20;
  const hasObject = random() < 0.5;
  const ox = Math.floor(random() * (size - 8));
  const oy = Math.floor(random() * (size - 8));
  for (let i = 0; i < n; i++) {
    const x = i % size;
    const y = Math.floor(i / size);
    const v = 40 + ((x + y) % 64) * 2 + Math.floor(random() * 20);
    a[i] = v;
    const inObject = hasObject && x >= ox && x < ox + 8 && y >= oy && y < oy + 8;
    b[i] = inObject ? 250 : Math.max(0, Math.min(255, v + shift + Math.round((random() * 2 - 1) * 5)));
  }
  return [
    { width: size, height: size, data: a },
    { width: size, height: size, data: b },
  ];
}

const pairs = new Map(SIZES.map((size) => [size, Array.from({ length: PAIRS }, () => pair(size))]));

/** Best-of-REPEATS milliseconds for one pass of `fn`, after a warm-up pass. */
function timeIt(fn: () => void): number {
  fn();
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < REPEATS; r++) {
    const start = performance.now();
    fn();
    best = Math.min(best, performance.now() - start);
  }
  return best;
}

const plainScores = new Map<number, Float64Array>();
const plainMs = new Map<number, number>();
for (const size of SIZES) {
  const list = pairs.get(size)!;
  const scores = new Float64Array(PAIRS);
  plainMs.set(
    size,
    timeIt(() => {
      for (const [i, [a, b]] of list.entries()) scores[i] = changeScore(a, b);
    }),
  );
  plainScores.set(size, scores);
}

const rssBefore = process.memoryUsage().rss;
const tf = await import('@tensorflow/tfjs');
await import('@tensorflow/tfjs-backend-wasm');
await tf.setBackend('wasm');
await tf.ready();
const rssLoaded = process.memoryUsage().rss;

/** The same score in tfjs: lower median of b - a via topk, then the fraction of |residual| > floor. */
function tensorScore(a: GrayImage, b: GrayImage): number {
  const n = a.data.length;
  const keep = n - ((n - 1) >> 1); // topk(keep) ends with the lower median
  return tf
    .tidy(() => {
      const diff = tf.sub(tf.tensor1d(b.data, 'int32'), tf.tensor1d(a.data, 'int32'));
      const median = tf.topk(diff, keep, true).values.slice([keep - 1], [1]);
      const changed = tf.greater(tf.abs(tf.sub(diff, median)), DEFAULT_NOISE_FLOOR);
      return tf.mean(tf.cast(changed, 'float32'));
    })
    .dataSync()[0]!;
}

/** A cheaper, NOT equivalent tfjs variant (mean instead of median correction): a lower bound for tfjs. */
function tensorScoreMean(a: GrayImage, b: GrayImage): number {
  return tf
    .tidy(() => {
      const diff = tf.sub(tf.tensor1d(b.data, 'int32'), tf.tensor1d(a.data, 'int32')).toFloat();
      const changed = tf.greater(tf.abs(tf.sub(diff, tf.mean(diff))), DEFAULT_NOISE_FLOOR);
      return tf.mean(tf.cast(changed, 'float32'));
    })
    .dataSync()[0]!;
}

const rows: string[] = [];
for (const size of SIZES) {
  const list = pairs.get(size)!;
  const scores = new Float64Array(PAIRS);
  const ms = timeIt(() => {
    for (const [i, [a, b]] of list.entries()) scores[i] = tensorScore(a, b);
  });
  const plain = plainScores.get(size)!;
  let maxError = 0;
  for (let i = 0; i < PAIRS; i++) maxError = Math.max(maxError, Math.abs(scores[i]! - plain[i]!));
  const meanMs = timeIt(() => {
    for (const [i, [a, b]] of list.entries()) scores[i] = tensorScoreMean(a, b);
  });
  const plainUs = (plainMs.get(size)! * 1000) / PAIRS;
  const tensorUs = (ms * 1000) / PAIRS;
  const meanUs = (meanMs * 1000) / PAIRS;
  rows.push(
    `| ${size}x${size} | ${plainUs.toFixed(2)} | ${tensorUs.toFixed(2)} | ${(tensorUs / plainUs).toFixed(1)} | ${maxError.toExponential(1)} | ${meanUs.toFixed(2)} |`,
  );
}
const rssAfter = process.memoryUsage().rss;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

process.stdout.write(
  [
    `${PAIRS} image pairs per size, best of ${REPEATS} passes after a warm-up; tfjs ${tf.version.tfjs}, backend ${tf.getBackend()}`,
    '',
    '| size | plain us/score | tfjs wasm us/score | tfjs time vs plain | max score difference | tfjs wasm, mean-corrected (cheaper, not equivalent) us/score |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    `RSS before tfjs: ${mib(rssBefore)} MiB; after loading tfjs + wasm backend: ${mib(rssLoaded)} MiB (+${mib(rssLoaded - rssBefore)}); after scoring with it: ${mib(rssAfter)} MiB (+${mib(rssAfter - rssBefore)})`,
    '',
  ].join('\n'),
);
