import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);
const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;
const main = new URL('../../src/cli/main.ts', import.meta.url).pathname;
const outpost = (...args: string[]) =>
  run(process.execPath, ['--import', tsx, main, ...args], { timeout: 30_000 });

describe('outpost simulate', () => {
  it('feeds a running gateway: every simulated message becomes readings', async () => {
    const gateway = await startGateway();
    try {
      const { stdout } = await outpost(
        'simulate',
        '--url',
        gateway.mqttUrl,
        '--count',
        '90',
        '--rate',
        '300',
        '--devices',
        '3',
      );
      expect(JSON.parse(stdout)).toMatchObject({ sent: 90 });
      await waitFor(
        '90 readings',
        () => gateway.sql<{ n: number }>('SELECT count(*) AS n FROM readings')[0]!.n === 90,
      );
      const series = gateway.sql<{ device: string; metric: string }>(
        'SELECT device, metric FROM series ORDER BY device, metric',
      );
      expect(series).toHaveLength(9);
      expect(series[0]).toEqual({ device: 'pump1', metric: 'pressure' });
      expect(gateway.sql('SELECT * FROM rejects')).toEqual([]);
    } finally {
      await gateway.stop();
    }
  });

  it('refuses bad options with a clear message', async () => {
    await expect(outpost('simulate', '--rate', 'fast')).rejects.toThrow(/rate must be a positive integer/);
  });
});
