/**
 * Benchmark child: the baseline, a bare mqtt.js subscriber that only counts QoS 1 messages (mqtt.js
 * acknowledges each on arrival). Prints `ready` once subscribed, then one JSON line after N messages.
 * Usage: bareSubscriber.ts <url> <count>
 */
import mqtt from 'mqtt';

const [url = 'mqtt://127.0.0.1:1883', countText = '50000'] = process.argv.slice(2);
const count = Number(countText);
const latencies = new Float64Array(count);
let received = 0;
let firstPublished = Number.POSITIVE_INFINITY;
const client = await mqtt.connectAsync(url, {
  protocolVersion: 4,
  clean: true,
  clientId: `bench-bare-${process.pid}`,
});
client.on('message', (_topic, payload) => {
  const now = Date.now();
  const { ts } = JSON.parse(payload.toString());
  firstPublished = Math.min(firstPublished, ts);
  latencies[received++] = now - ts;
  if (received === count) {
    // From the first publish to the last receipt: the rate at which the whole stream got through.
    const elapsedMs = now - firstPublished;
    const sorted = latencies.sort();
    const pct = (p) => sorted[Math.min(count - 1, Math.floor((p / 100) * count))];
    process.stdout.write(
      `${JSON.stringify({ received, elapsedMs, rate: (count / elapsedMs) * 1000, p50: pct(50), p99: pct(99), peakRssMb: process.resourceUsage().maxRSS / 1024 })}\n`,
    );
    client.end(true, {}, () => process.exit(0));
  }
});
await client.subscribeAsync('sensors/#', { qos: 1 });
process.stdout.write('ready\n');
