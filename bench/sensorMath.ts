/**
 * npm run bench:sensor-math
 *
 * Does tensor math pay for the sensor path? Scores the same readings (robust z-score against the median and
 * MAD of each series' last 60 values) and aggregates the same windows (count/min/max/mean/std) with the
 * plain typed-array code Outpost uses and with @tensorflow/tfjs on its wasm backend (tfjs-node too, when it
 * happens to be installed), side by side in one run.
 */
import { RobustDetector } from '../src/pipeline/sensor/detector.js';

const SERIES = 200;
const WINDOW = 60;
const BATCH = 10; // readings per series per batch: a busy pipeline batch of 2000
const ROUNDS = 30;

let state = 7;
const random = () => {
  state = (state * 1103515245 + 12345) % 2 ** 31;
  return state / 2 ** 31;
};
const history = Array.from({ length: SERIES }, () => Array.from({ length: WINDOW }, () => 50 + random()));
const batches = Array.from({ length: ROUNDS }, () =>
  Array.from({ length: SERIES }, () => Array.from({ length: BATCH }, () => 50 + random())),
);

function timeIt(fn: () => void): number {
  fn(); // warm-up
  const start = performance.now();
  for (let i = 0; i < 3; i++) fn();
  return (performance.now() - start) / 3;
}

// Plain code: one detector per series, each reading scored in order (what the pipeline does).
const plainScoring = timeIt(() => {
  const detectors = history.map((h) => {
    const d = new RobustDetector({ window: WINDOW });
    d.seed(h);
    return d;
  });
  for (const batch of batches) {
    for (const [s, values] of batch.entries()) {
      for (const [i, v] of values.entries()) detectors[s]!.observe(i, v);
    }
  }
});
const plainWindows = timeIt(() => {
  for (const batch of batches) {
    for (const values of batch) {
      let min = Infinity;
      let max = -Infinity;
      let mean = 0;
      let m2 = 0;
      values.forEach((v, i) => {
        min = Math.min(min, v);
        max = Math.max(max, v);
        const delta = v - mean;
        mean += delta / (i + 1);
        m2 += delta * (v - mean);
      });
      if (!(m2 >= 0 && min <= max)) throw new Error('unreachable');
    }
  }
});

const readings = ROUNDS * SERIES * BATCH;
const rows: string[] = [
  `| plain typed arrays | ${((plainScoring * 1000) / readings).toFixed(2)} | ${((plainWindows * 1000) / readings).toFixed(3)} | 1.00 |`,
];

const rssBefore = process.memoryUsage().rss;
let rssAfter = rssBefore;
for (const backend of ['wasm', 'tensorflow']) {
  const tf = await import('@tensorflow/tfjs');
  try {
    if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
    else await import('@tensorflow/tfjs-node' as string);
  } catch {
    rows.push(`| tfjs ${backend} | not installed | | |`);
    continue;
  }
  await tf.setBackend(backend);
  await tf.ready();
  rssAfter = Math.max(rssAfter, process.memoryUsage().rss);
  // Vectorised: every series' baseline sorted at once (topk), median and MAD, then the batch scored
  // against it. This already cheats in tfjs' favour: readings within a batch do not update the baseline.
  const tensorScoring = timeIt(() => {
    for (const batch of batches) {
      tf.tidy(() => {
        const base = tf.tensor2d(history);
        const sorted = tf.topk(base, WINDOW).values;
        const median = sorted.slice([0, WINDOW / 2], [SERIES, 1]);
        const deviations = tf.topk(base.sub(median).abs(), WINDOW).values;
        const mad = deviations
          .slice([0, WINDOW / 2], [SERIES, 1])
          .mul(1.4826)
          .add(1e-9);
        tf.tensor2d(batch).sub(median).abs().div(mad).dataSync();
      });
    }
  });
  const tensorWindows = timeIt(() => {
    for (const batch of batches) {
      tf.tidy(() => {
        const x = tf.tensor2d(batch);
        const { mean, variance } = tf.moments(x, 1);
        tf.stack([x.min(1), x.max(1), mean, variance.sqrt()]).dataSync();
      });
    }
  });
  rows.push(
    `| tfjs ${backend} | ${((tensorScoring * 1000) / readings).toFixed(2)} | ${((tensorWindows * 1000) / readings).toFixed(3)} | ${(tensorScoring / plainScoring).toFixed(1)} |`,
  );
}

process.stdout.write(
  [
    `${SERIES} series x ${BATCH} readings a batch, ${ROUNDS} batches, baseline ${WINDOW}`,
    '',
    '| implementation | scoring us/reading | window stats us/reading | scoring time vs plain |',
    '|---|---|---|---|',
    ...rows,
    '',
    `RSS of the process before tfjs: ${(rssBefore / 2 ** 20).toFixed(0)} MiB; after loading it and running: ${(rssAfter / 2 ** 20).toFixed(0)} MiB`,
    '',
  ].join('\n'),
);
