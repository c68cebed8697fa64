import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../../src/common/index.js';
import { publisher, startGateway, type TestGateway } from '../helpers/gateway.js';
import { waitFor } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const MIN_FREE = 16 * MiB;

interface DiskStatus {
  freeBytes: number;
  low: boolean;
  emergencyPrunes: number;
  lastPrune: { reason: string; mediaFiles: number; rows: number; freedBytes: number } | null;
}

async function status(gateway: TestGateway) {
  const response = await fetch(`${gateway.httpUrl}/api/status`);
  return (await response.json()) as { disk: DiskStatus; media: { files: number; bytes: number } };
}

/** Bytes of the files under `dir`. */
function folderBytes(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += statSync(join(entry.parentPath, entry.name)).size;
  }
  return total;
}

/** A frame of noise: it compresses badly, so each stored copy takes real room. */
function noiseFrame(seed: number): Promise<Buffer> {
  const random = mulberry32(seed);
  const pixels = Buffer.alloc(640 * 640 * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(random() * 256);
  return sharp(pixels, { raw: { width: 640, height: 640, channels: 3 } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

/**
 * The data folder is a real 64 MiB tmpfs mounted by the test (it runs as root, as CI does). Everything the
 * daemon writes (database, WAL, media) counts against it, and a ballast file stands for the other things
 * that fill a card (logs, other programs).
 */
describe('data folder on a small size-capped file system', () => {
  let dir: string;
  let gateway: TestGateway;
  const ballast = () => join(dir, 'ballast.bin');
  /** Set when the test may not mount a tmpfs: a volume simulated from what the folder holds. */
  let simulated = false;
  const free = () => {
    if (simulated) return SIZE - folderBytes(dir);
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'outpost-tmpfs-'));
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${SIZE}`, 'tmpfs', dir], { stdio: 'pipe' });
    } catch (error) {
      // Not root (or no CAP_SYS_ADMIN): the same test against a simulated statfs, said so.
      simulated = true;
      console.warn(
        `tmpfs mount not permitted (${(error as Error).message.split('\n')[0]}): simulated 64 MiB volume`,
      );
    }
    const diskProbe = simulated ? async () => ({ freeBytes: free(), totalBytes: SIZE }) : undefined;
    gateway = await startGateway(
      {
        OUTPOST_DATA_DIR: dir,
        // No model file: frame jobs wait for one, and their images stay on the volume meanwhile.
        OUTPOST_MODEL: join(dir, 'no-such-model.gguf'),
        OUTPOST_STORE_MIN_FREE_BYTES: String(MIN_FREE),
        OUTPOST_STORE_DISK_CHECK_INTERVAL: '0.5',
        OUTPOST_FRAMES_GATE_MODE: 'off',
        OUTPOST_FRAMES_GATE_MIN_INTERVAL: '0',
      },
      { diskProbe },
    );
  });

  afterAll(async () => {
    if (gateway) expect(await gateway.stop()).toBe(0);
    if (dir) {
      if (!simulated) execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prunes the oldest media when free space runs low, keeps running, and reports it', async () => {
    const camera = await publisher(gateway.mqttUrl);
    // One waiting frame per camera (a newer frame of a camera replaces its older one).
    for (let n = 0; n < 40; n++) {
      await camera.publishAsync(`cameras/cam${n}/frame`, await noiseFrame(n), { qos: 1 });
    }
    const filled = await waitFor('40 frames stored', async () => {
      const s = await status(gateway);
      return s.media.files === 80 ? s : undefined;
    });
    expect(filled.disk).toMatchObject({ low: false, emergencyPrunes: 0 });
    expect(filled.media.bytes).toBeGreaterThan(7 * MiB);

    // Something else fills the card to 14 MiB free: below the 16 MiB the gateway keeps (it aims for 20).
    writeFileSync(ballast(), Buffer.alloc(free() - 14 * MiB));
    const pruned = await waitFor('an emergency prune', async () => {
      const s = await status(gateway);
      return s.disk.emergencyPrunes >= 1 && !s.disk.low ? s : undefined;
    });
    expect(pruned.disk.lastPrune).toMatchObject({ reason: 'low disk' });
    expect(pruned.disk.lastPrune!.mediaFiles).toBeGreaterThan(0);
    expect(pruned.media.files).toBeLessThan(80);
    expect(free()).toBeGreaterThanOrEqual(MIN_FREE);
    console.log(
      `tmpfs ${SIZE / MiB} MiB: emergency prune deleted ${pruned.disk.lastPrune!.mediaFiles} media files, ` +
        `freed ${(pruned.disk.lastPrune!.freedBytes / MiB).toFixed(1)} MiB; free now ${(free() / MiB).toFixed(1)} MiB`,
    );

    // The newest frames are the ones kept.
    const kept = gateway.sql<{ source: string }>('SELECT DISTINCT source FROM media');
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.map((k) => k.source)).not.toContain('cam0');
    await camera.endAsync();
  }, 60_000);

  it('when nothing more may go, says so and keeps serving; recovers when space returns', async () => {
    rmSync(ballast(), { force: true });
    writeFileSync(ballast(), Buffer.alloc(free() - 2 * MiB));
    const low = await waitFor('low disk reported', async () => {
      const s = await status(gateway);
      return s.disk.low ? s : undefined;
    });
    expect(low.disk.freeBytes).toBeLessThan(MIN_FREE);
    expect((await fetch(`${gateway.httpUrl}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${gateway.httpUrl}/metrics`)).text();
    expect(metrics).toMatch(/^outpost_disk_low 1$/m);

    rmSync(ballast());
    await waitFor('low disk cleared', async () => !(await status(gateway)).disk.low);
    const sensor = await publisher(gateway.mqttUrl);
    await sensor.publishAsync('sensors/after/level', '42', { qos: 1 });
    await sensor.endAsync();
    await waitFor('the reading stored', () => gateway.sql('SELECT 1 FROM readings').length === 1);
  }, 60_000);
});
