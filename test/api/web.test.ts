/**
 * The live web page in a real browser: Debian's Chromium driven by playwright-core against a real gateway
 * with the tiny generated gemma3n and a tiny vision projector (real worker, real runtimes, no mock), with a
 * bearer token so the token form and the token-guarded media are exercised too.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeTinyGemma3n } from '../fixtures/gguf/gemma3n.js';
import { writeTinyVisionProjector } from '../fixtures/gguf/visionProjector.js';
import { gaussian, publisher, startGateway, type TestGateway } from '../helpers/gateway.js';

const TOKEN = 'web-token-0123456789';
const CHROMIUM = process.env.OUTPOST_CHROMIUM ?? '/usr/bin/chromium';
const WEB = fileURLToPath(new URL('../../src/api/web/', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/', import.meta.url));
const MODEL_WAIT = 90_000;
const POLL = { timeout: 10_000 };

describe('the web page at /', { timeout: 120_000 }, () => {
  let gateway: TestGateway;
  let browser: Browser;
  let page: Page;
  let lan: Relay;
  const consoleErrors: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium`);
    const dir = mkdtempSync(join(tmpdir(), 'outpost-web-'));
    const model = (await writeTinyGemma3n(join(dir, 'tiny.gguf'), { size: 'small' })).path;
    const projector = (await writeTinyVisionProjector(join(dir, 'mmproj.gguf'), { projectionDim: 64 })).path;
    gateway = await startGateway({
      OUTPOST_HTTP_TOKEN: TOKEN,
      OUTPOST_HTTP_HOST: '127.0.0.1', // with a token the default would be 0.0.0.0
      OUTPOST_MODEL: model,
      OUTPOST_MMPROJ: projector,
      OUTPOST_MODEL_CONTEXT_SIZES: '[2048]',
      OUTPOST_MODEL_MAX_TOKENS: '1500',
      OUTPOST_MODEL_THREADS: '1',
      OUTPOST_MODEL_RESERVE: '0',
      OUTPOST_INFERENCE_MODEL_RETRY: '0.2',
      OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
      OUTPOST_SENSORS_ANOMALY_COOLDOWN: '0.001',
      OUTPOST_FRAMES_GATE_MIN_INTERVAL: '0',
      OUTPOST_FRAMES_GATE_COOLDOWN: '0',
    });
    lan = await startRelay(new URL(gateway.httpUrl));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.on('request', (r) => requests.push(r.url()));
    page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(`${m.text()} (${m.location().url})`);
    });
    page.on('pageerror', (error) => consoleErrors.push(String(error)));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await lan?.close();
    if (gateway) expect(await gateway.stop()).toBe(0);
  });

  it('is small and loads nothing from outside the gateway', () => {
    const bytes = ['index.html', 'app.js', 'style.css'].reduce((n, f) => n + statSync(join(WEB, f)).size, 0);
    expect(bytes).toBeLessThan(40 * 1024);
    for (const file of ['index.html', 'app.js', 'style.css']) {
      // The only absolute URL is the SVG namespace, which names and never fetches.
      const urls = readFileSync(join(WEB, file), 'utf8').match(/\b(?:https?:)?\/\/[\w.-]+\.\w+/g) ?? [];
      expect(
        urls.filter((u) => u !== 'http://www.w3.org'),
        file,
      ).toEqual([]);
    }
  });

  it('asks for the token once, then fills the status panel', async () => {
    const response = await page.goto(`${lan.url}/`);
    // A browser sends no header when it navigates: the page shell itself must not need the token.
    expect(response?.status(), 'GET / without a token').toBe(200);
    const token = page.getByRole('textbox', { name: 'Access token' });
    await token.waitFor();
    // Asking without a token is how the page learns it needs one: those 401s are the only errors allowed.
    expect(consoleErrors.filter((e) => !e.includes('status of 401'))).toEqual([]);
    consoleErrors.length = 0;
    await token.fill(TOKEN);
    await page.getByRole('button', { name: 'Connect' }).click();

    await expect.poll(() => page.locator('#gateway').textContent(), POLL).toContain('gw-test');
    await expect.poll(() => page.locator('#memory').textContent(), POLL).toMatch(/\d+ MB RSS/);
    await expect.poll(() => page.locator('#broker').textContent(), POLL).toBe('connected');
    expect(await page.locator('#jobs').textContent()).toMatch(/queued \d+/);
    expect(await page.evaluate<string | null>("localStorage.getItem('outpost.token')")).toBe(TOKEN);
    await expect.poll(() => page.locator('#live').textContent(), POLL).toBe('live');

    await page.reload(); // kept in this browser: not asked again
    await expect.poll(() => page.locator('#live').textContent(), POLL).toBe('live');
    expect(await token.isVisible()).toBe(false);
  });

  it('shows an anomaly and its explanation live, marked on the sensor chart', async () => {
    await page.evaluate('window.outpostMarker = 1'); // gone if the page reloaded
    await raiseAnomaly(gateway, 'pump1');
    const finding = page.locator('#feed li.kind-anomaly[data-source="pump1"]');
    await finding.waitFor({ timeout: MODEL_WAIT });
    expect(await finding.locator('.badge').textContent()).toMatch(/^(info|warning|critical)$/);
    // The random tiny model may leave a field empty (the page then omits it): compare with what was stored.
    const stored = (await (
      await fetch(`${gateway.httpUrl}/api/results?kind=anomaly&source=pump1`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      })
    ).json()) as { results: { output: { summary: string } }[] };
    expect(await finding.textContent()).toContain(stored.results[0]!.output.summary.trim().slice(0, 20));
    expect(await page.locator('#announce').textContent()).toBe('New anomaly finding from pump1');

    const chart = page.locator('figure.chart[data-series="pump1/temperature"]');
    await chart.locator('circle.anomaly').waitFor(POLL);
    expect(await chart.locator('svg').getAttribute('aria-label')).toMatch(/1 anomaly$/);
    expect(await page.evaluate('window.outpostMarker')).toBe(1);
    await expect.poll(() => page.locator('#model-state').textContent(), POLL).toBe('ready');
    expect(await page.locator('#model-variant').textContent()).toBe('tiny.gguf');
  });

  it('shows a frame finding with its thumbnail, fetched with the token', async () => {
    const camera = await publisher(gateway.mqttUrl);
    await camera.publishAsync('cameras/yard/frame', await scene(100), { qos: 1 });
    await camera.endAsync();
    const thumb = page.locator('#feed li.kind-frame[data-source="yard"] img.thumb');
    await thumb.waitFor({ timeout: MODEL_WAIT });
    await expect.poll(() => thumb.getAttribute('src'), POLL).toMatch(/^blob:/);
    await expect
      .poll(
        () => page.evaluate<number>("document.querySelector('li.kind-frame img.thumb').naturalWidth"),
        POLL,
      )
      .toBe(320);
    expect(await thumb.getAttribute('alt')).toBeTruthy();
    await expect.poll(() => page.locator('#model-caps').textContent(), POLL).toBe('text, image');
  });

  it('reconnects after the network drops and resumes the stream where it stopped', async () => {
    const resumes: (string | undefined)[] = [];
    page.on('request', (r) => {
      if (r.url().endsWith('/api/stream')) resumes.push(r.headers()['last-event-id']);
    });
    const before = consoleErrors.length;
    lan.cut();
    await expect.poll(() => page.locator('#live').textContent(), POLL).toMatch(/^reconnecting/);
    await raiseAnomaly(gateway, 'pump2'); // stored while the page is away
    lan.restore();
    await page.locator('#feed li.kind-anomaly[data-source="pump2"]').waitFor({ timeout: MODEL_WAIT });
    await expect.poll(() => page.locator('#live').textContent(), POLL).toBe('live');
    expect(resumes.at(-1)).toMatch(/^r\d+\.e\d+$/);
    await page.locator('figure.chart[data-series="pump2/temperature"] circle.anomaly').waitFor(POLL);
    // The browser logs each request that failed while the link was down; nothing else is expected of it.
    const dropped = consoleErrors.splice(before);
    expect(dropped.filter((e) => !/Failed to load resource: net::ERR_\w+/.test(e))).toEqual([]);
  });

  it('answers a question from the ask box', async () => {
    await page.getByLabel('Question about recent findings').fill('What happened at pump1?');
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/ask'), { timeout: MODEL_WAIT });
    await page.getByRole('button', { name: 'Ask' }).click();
    const response = await answered;
    if (response.status() === 503) {
      // The daemon does not pass `ask` to startApiServer yet, and the route says so: the page shows why.
      // Once it does, a loaded model answers and this branch no longer runs.
      const { message } = (await response.json()) as { message: string };
      expect(message).toBe('questions need the local model; inference is off');
      await expect
        .poll(() => page.getByRole('alert').textContent(), POLL)
        .toBe(`No model can answer right now: ${message}`);
      const i = consoleErrors.findIndex((e) => e.includes('status of 503'));
      expect(i).toBeGreaterThanOrEqual(0);
      consoleErrors.splice(i, 1);
      return;
    }
    expect(response.status()).toBe(200);
    const body = (await response.json()) as { answer: string; results: string[] };
    await expect.poll(() => page.locator('#answer .answer').textContent(), POLL).toBe(body.answer);
    expect(await page.locator('#answer').textContent()).not.toContain('null');
    const links = page.locator('#answer a[href^="#r-"]');
    expect(await links.count()).toBe(body.results.length);
    if (body.results.length > 0) {
      await links.first().click();
      await expect
        .poll(() => page.evaluate<string>('document.activeElement.id'), POLL)
        .toBe(`r-${body.results[0]}`);
    }
  });

  it('fits a phone screen; screenshots; no console errors, no request off the gateway', async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'web.png'), fullPage: true });
    await page.setViewportSize({ width: 380, height: 800 });
    expect(await page.evaluate<boolean>('document.documentElement.scrollWidth <= window.innerWidth')).toBe(
      true,
    );
    await page.screenshot({ path: join(ARTIFACTS, 'web-narrow.png'), fullPage: true });

    expect(consoleErrors).toEqual([]);
    const origin = lan.url;
    const elsewhere = requests.filter(
      (url) =>
        !url.startsWith(`${origin}/`) && !url.startsWith(`blob:${origin}/`) && !url.startsWith('data:'),
    );
    expect(elsewhere).toEqual([]);
    expect(requests.some((url) => url.startsWith(`${origin}/api/stream`))).toBe(true);
  });
});

/** 25 normal readings of a device, then one far outside: one anomaly event, one explain job. */
async function raiseAnomaly(gateway: TestGateway, device: string) {
  const sensor = await publisher(gateway.mqttUrl);
  const noise = gaussian(7);
  const start = Date.now() - 26_000;
  for (let i = 0; i < 26; i++) {
    const value = i === 25 ? 500 : 20 + noise();
    const payload = JSON.stringify({ value, unit: 'C', ts: start + i * 1000 });
    await sensor.publishAsync(`sensors/${device}/temperature`, payload, { qos: 1 });
  }
  await sensor.endAsync();
}

/** A 640x480 scene with a block at x. */
const scene = (x: number) =>
  sharp({ create: { width: 640, height: 480, channels: 3, background: '#4a6a3a' } })
    .composite([
      {
        input: Buffer.from(
          `<svg width="640" height="480"><rect x="${x}" y="150" width="140" height="160" fill="#e0e0e0"/></svg>`,
        ),
      },
    ])
    .jpeg()
    .toBuffer();

interface Relay {
  /** http://127.0.0.1:port: the origin the browser sees */
  url: string;
  /** Drops every connection and refuses new ones, as a lost Wi-Fi link would. */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

/**
 * The LAN between browser and gateway: a plain TCP relay (bytes through, untouched), so a test can drop the
 * link. Chromium's offline emulation cannot: it fails new requests but leaves an open stream running.
 */
async function startRelay(target: URL): Promise<Relay> {
  const sockets = new Set<Socket>();
  let down = false;
  const server = createServer((client) => {
    if (down) return client.destroy();
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      down = true;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      down = false;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
