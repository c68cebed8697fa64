import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import unix from 'unix-dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import { SdNotify } from '../../src/daemon/index.js';
import { freePort } from '../helpers/mosquitto.js';
import { type GatewayProcess, spawnGateway } from '../helpers/process.js';
import { waitFor } from '../helpers/wait.js';

/** A notify socket the test owns, as systemd's: every datagram with the time it arrived. */
function notifySocket() {
  const path = join(mkdtempSync(join(tmpdir(), 'outpost-notify-')), 'notify.sock');
  const received: { at: number; fields: Record<string, string> }[] = [];
  const socket = unix.createSocket('unix_dgram', (data: Buffer) => {
    const fields = Object.fromEntries(
      data
        .toString()
        .split('\n')
        .filter(Boolean)
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    received.push({ at: Date.now(), fields });
  });
  socket.bind(path);
  return { path, received, close: () => socket.close() };
}

describe('sd_notify', () => {
  let gateway: GatewayProcess | undefined;
  let socket: ReturnType<typeof notifySocket> | undefined;

  afterEach(() => {
    gateway?.child.kill('SIGKILL');
    socket?.close();
    gateway = undefined;
    socket = undefined;
  });

  it('the daemon under a notify socket: READY once it serves, WATCHDOG at half WatchdogSec, STATUS, STOPPING', async () => {
    socket = notifySocket();
    const dataDir = mkdtempSync(join(tmpdir(), 'outpost-sdnotify-'));
    const httpPort = await freePort();
    gateway = spawnGateway(
      {
        OUTPOST_DATA_DIR: dataDir,
        OUTPOST_HTTP_PORT: String(httpPort),
        OUTPOST_BROKER_PORT: String(await freePort()),
        OUTPOST_INFERENCE_ENABLED: 'false',
        NOTIFY_SOCKET: socket.path,
        WATCHDOG_USEC: '1000000',
      },
      dataDir,
    );
    const ready = await waitFor(
      'READY=1',
      () => socket!.received.find((m) => m.fields.READY === '1'),
      30_000,
    );
    // READY comes only once the HTTP API (and so the store and broker) is up.
    expect((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).status).toBe(200);
    expect(ready.fields.STATUS).toMatch(/^running; broker connected; model disabled; journal 0; outbox 0$/);
    expect(Number(ready.fields.MAINPID)).toBe(gateway.child.pid);

    await new Promise((resolve) => setTimeout(resolve, 3000));
    const pings = socket.received.filter((m) => m.fields.WATCHDOG === '1' && m.at > ready.at);
    const gaps = pings.slice(1).map((p, i) => p.at - pings[i]!.at);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    console.log(`WATCHDOG_USEC 1 s: ${pings.length} pings in 3 s, mean gap ${mean.toFixed(0)} ms`);
    expect(pings.length).toBeGreaterThanOrEqual(4);
    expect(mean).toBeGreaterThan(350);
    expect(mean).toBeLessThan(800);
    expect(pings.at(-1)!.fields.STATUS).toContain('broker connected');

    gateway.child.kill('SIGTERM');
    expect(await gateway.exited).toBe(0);
    expect(socket.received.some((m) => m.fields.STOPPING === '1')).toBe(true);
  }, 60_000);

  it('a blocked event loop sends no WATCHDOG (so systemd restarts it); a foreign WATCHDOG_PID none at all', async () => {
    socket = notifySocket();
    const logger = createLogger({ level: 'silent', format: 'json' });
    const notify = new SdNotify({ env: { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '200000' }, logger });
    expect(notify.watchdogMs).toBe(100);
    const sentAt: number[] = [];
    const spy = new SdNotify({
      env: { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '200000' },
      logger,
      send: async () => {
        sentAt.push(Date.now());
      },
    });
    await spy.ready();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const blockedFrom = Date.now();
    while (Date.now() - blockedFrom < 1500) {} // the event loop is stuck
    const blockedTo = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await spy.stopping();
    const during = sentAt.filter((t) => t > blockedFrom && t < blockedTo);
    expect(sentAt.filter((t) => t < blockedFrom).length).toBeGreaterThanOrEqual(3);
    expect(during).toEqual([]);
    expect(sentAt.filter((t) => t >= blockedTo).length).toBeGreaterThanOrEqual(2);

    // The watchdog is meant for another process (a wrapper's): this one pings nothing.
    const other = new SdNotify({
      env: { NOTIFY_SOCKET: socket.path, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' },
      logger,
    });
    expect(other.watchdogMs).toBeUndefined();
    // Not under systemd: nothing at all.
    expect(new SdNotify({ env: {}, logger }).enabled).toBe(false);
  });
});
