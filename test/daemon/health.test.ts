import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; required: boolean; [k: string]: unknown }>;
}

describe('/healthz and /readyz, as the systemd and balena deployments use them', () => {
  let gateway: TestGateway | undefined;
  afterEach(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    gateway = undefined;
  });

  it('healthy and ready on the embedded broker: required checks ok, the rest reported', async () => {
    gateway = await startGateway({ OUTPOST_INFERENCE_ENABLED: 'false' });
    const health = await (await fetch(`${gateway.httpUrl}/healthz`)).json();
    expect(health).toMatchObject({ status: 'ok', eventLoopDelayMs: { windowMs: 10_000 } });
    const response = await fetch(`${gateway.httpUrl}/readyz`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as Readiness;
    expect(body).toEqual({
      ready: true,
      checks: {
        store: { ok: true, required: true },
        broker: { ok: true, required: true, embedded: true },
        model: { ok: true, required: false, state: 'disabled' },
        disk: { ok: true, required: false, freeBytes: expect.any(Number) },
      },
    });
  });

  it('alive but not ready while its broker is unreachable; says which check failed', async () => {
    gateway = await startGateway(
      { OUTPOST_MQTT_URL: `mqtt://127.0.0.1:${await freePort()}`, OUTPOST_INFERENCE_ENABLED: 'false' },
      { waitConnected: false },
    );
    expect((await fetch(`${gateway.httpUrl}/healthz`)).status).toBe(200);
    const body = await waitFor('a 503', async () => {
      const response = await fetch(`${gateway!.httpUrl}/readyz`);
      return response.status === 503 ? ((await response.json()) as Readiness) : undefined;
    });
    expect(body.ready).toBe(false);
    expect(body.checks.broker).toEqual({ ok: false, required: true, embedded: false });
    expect(body.checks.store).toEqual({ ok: true, required: true });
  });
});
