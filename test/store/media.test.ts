import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/index.js';
import { outboxLimits } from '../helpers/outbox.js';

const DAY = 86_400_000;
let store: Store | undefined;

function open() {
  const dataDir = mkdtempSync(join(tmpdir(), 'outpost-media-'));
  store = Store.open({ dataDir, outbox: outboxLimits() });
  return { store, dataDir, root: join(dataDir, 'media') };
}

afterEach(() => {
  store?.close();
  store = undefined;
});

/** Writes and records a file of `bytes` bytes at `now`. */
async function add(s: Store, path: string, bytes: number, now: number) {
  const file = await s.media.write({ path, source: 'cam1', kind: 'thumbnail' }, Buffer.alloc(bytes, 7));
  s.transaction(() => s.media.record([file], now));
  return file;
}

describe('MediaStore', () => {
  it('writes files under the media folder and counts them', async () => {
    const { store: s, root } = open();
    const file = await add(s, 'frames/cam1/2026-11-28/1-thumb.jpg', 1000, 0);
    expect(file).toEqual({
      path: 'frames/cam1/2026-11-28/1-thumb.jpg',
      source: 'cam1',
      kind: 'thumbnail',
      bytes: 1000,
    });
    expect(readdirSync(join(root, 'frames', 'cam1', '2026-11-28'))).toEqual(['1-thumb.jpg']);
    expect(s.media.totals()).toEqual({ files: 1, bytes: 1000 });
  });

  it.each(['../outpost.db', 'frames/../../etc/passwd', '/etc/passwd', 'frames//x.jpg', 'frames/./x.jpg', ''])(
    'refuses the path %j',
    (path) => {
      const { store: s } = open();
      expect(() => s.media.resolve(path)).toThrow(/not a media path/);
    },
  );

  it('expires the oldest files by age, then by total bytes', async () => {
    const { store: s } = open();
    await add(s, 'a/1.jpg', 100, 1 * DAY);
    await add(s, 'a/2.jpg', 100, 2 * DAY);
    await add(s, 'a/3.jpg', 100, 3 * DAY);
    await add(s, 'a/4.jpg', 100, 4 * DAY);
    expect(s.media.expired({ before: 2.5 * DAY, maxBytes: 1e9 })).toEqual(['a/1.jpg', 'a/2.jpg']);
    expect(s.media.expired({ before: 0, maxBytes: 250 })).toEqual(['a/1.jpg', 'a/2.jpg']);
    expect(s.media.expired({ before: 0, maxBytes: 1e9 })).toEqual([]);

    const gone = s.media.expired({ before: 0, maxBytes: 150 });
    s.transaction(() => s.media.forget(gone));
    await s.media.unlink(gone);
    expect(gone).toEqual(['a/1.jpg', 'a/2.jpg', 'a/3.jpg']);
    expect(s.media.totals()).toEqual({ files: 1, bytes: 100 });
    expect(existsSync(s.media.resolve('a/1.jpg'))).toBe(false);
    expect(existsSync(s.media.resolve('a/4.jpg'))).toBe(true);
  });

  it('sweeps files no row references, stale temp files and empty day folders', async () => {
    const { store: s, root } = open();
    await add(s, 'frames/cam1/day1/1-thumb.jpg', 10, 0);
    // A crash after writing, before the commit; a temp file; a day folder emptied by retention.
    await s.media.write(
      { path: 'frames/cam1/day1/2-thumb.jpg', source: 'cam1', kind: 'thumbnail' },
      Buffer.alloc(5),
    );
    writeFileSync(join(root, 'frames', 'cam1', 'day1', '3-input.jpg.tmp'), 'x');
    mkdirSync(join(root, 'frames', 'cam1', 'day0'));
    expect(await s.media.sweepOrphans()).toBe(2);
    expect(readdirSync(join(root, 'frames', 'cam1'))).toEqual(['day1']);
    expect(readdirSync(join(root, 'frames', 'cam1', 'day1'))).toEqual(['1-thumb.jpg']);
    expect(await s.media.sweepOrphans()).toBe(0);
  });

  it('sweeps nothing when the folder does not exist yet', async () => {
    const { store: s } = open();
    expect(await s.media.sweepOrphans()).toBe(0);
  });
});
