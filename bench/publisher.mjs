/**
 * Benchmark child: publishes N QoS 1 sensor readings as fast as the broker acknowledges them (a window of
 * `inflight` un-acked publishes), each stamped with its publish time. Prints one JSON line when done.
 * Usage: publisher.ts <url> <count> [inflight]
 */
import mqtt from 'mqtt';

const [url = 'mqtt://127.0.0.1:1883', countText = '50000', inflightText = '200'] = process.argv.slice(2);
const count = Number(countText);
const inflight = Number(inflightText);
const client = await mqtt.connectAsync(url, {
  protocolVersion: 4,
  clean: true,
  clientId: `bench-pub-${process.pid}`,
});
const started = performance.now();
let next = 0;
let acked = 0;
await new Promise((resolve, reject) => {
  const send = () => {
    while (next < count && next - acked < inflight) {
      const n = next++;
      const payload = JSON.stringify({ value: n, ts: Date.now() });
      client.publish(`sensors/bench${n % 10}/load`, payload, { qos: 1 }, (error) => {
        if (error) return reject(error);
        acked += 1;
        if (acked === count) resolve();
        else send();
      });
    }
  };
  send();
});
const elapsedMs = performance.now() - started;
await client.endAsync();
process.stdout.write(`${JSON.stringify({ sent: count, elapsedMs, rate: (count / elapsedMs) * 1000 })}\n`);
