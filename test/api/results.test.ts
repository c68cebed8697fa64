import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeCursor,
  encodeCursor,
  parseResultsQuery,
  type ResultJson,
  type ResultsPageJson,
} from '../../src/api/index.js';
import { openDatabase } from '../../src/store/database.js';
import { ftsMatchExpression } from '../../src/store/index.js';
import { migrations } from '../../src/store/migrations.js';
import { StoreQueries } from '../../src/store/queries.js';
import { type ApiHarness, startApi } from './harness.js';

const T0 = Date.UTC(2026, 2, 1);

describe('GET /api/results', () => {
  let api: ApiHarness;
  const ids: string[] = [];

  beforeAll(async () => {
    api = await startApi();
    const add = (fields: Parameters<ApiHarness['addResult']>[0]) => ids.push(api.addResult(fields));
    add({
      kind: 'frame',
      source: 'yard',
      ts: T0,
      output: {
        description: 'A forklift parked near the north gate',
        objects: [
          { label: 'Forklift', count: 1 },
          { label: 'person', count: 2 },
        ],
        alert: false,
      },
    });
    add({
      kind: 'audio',
      source: 'hall',
      ts: T0 + 60_000,
      output: {
        transcript: 'help, the boiler is leaking',
        translation: 'hilfe',
        alert: true,
        alertReason: 'call for help',
      },
    });
    add({
      kind: 'digest',
      source: 'boiler',
      ts: T0 + 120_000,
      output: { summary: 'Pressure steady all night', status: 'normal', highlights: ['Valve café check'] },
    });
    add({
      kind: 'anomaly',
      source: 'boiler',
      ts: T0 + 180_000,
      output: { summary: 'Temperature spike', likelyCause: 'a stuck valve', severity: 'warning' },
    });
    add({
      kind: 'frame',
      source: 'gate',
      ts: T0 + 240_000,
      output: { description: 'a DOG by the fence', objects: [{ label: 'dog', count: 1 }] },
    });
  });
  afterAll(async () => {
    await api.close();
  });

  const page = (query: string) => api.json<ResultsPageJson>(`/api/results${query}`);
  const idsOf = async (query: string) => (await page(query)).results.map((r) => r.id);

  it('lists results newest first in the contract shape', async () => {
    const body = await page('');
    expect(body.next).toBeNull();
    expect(body.results.map((r) => r.id)).toEqual([...ids].reverse());
    const first = body.results.at(-1) as ResultJson;
    expect(first).toEqual({
      id: ids[0],
      kind: 'frame',
      source: 'yard',
      ts: new Date(T0).toISOString(),
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      model: 'gemma-3n-e2b',
      variant: 'Q4_K_M',
      latencyMs: 1234,
      output: expect.objectContaining({ description: 'A forklift parked near the north gate' }),
      media: null,
    });
    expect(await api.json(`/api/results/${ids[0]}`)).toEqual(first);
  });

  it('filters by kind, source and time (ISO or epoch ms, on ts)', async () => {
    expect(await idsOf('?kind=frame')).toEqual([ids[4], ids[0]]);
    expect(await idsOf('?source=boiler')).toEqual([ids[3], ids[2]]);
    expect(await idsOf('?kind=digest&source=boiler')).toEqual([ids[2]]);
    expect(await idsOf(`?since=${T0 + 60_000}&until=${T0 + 180_000}`)).toEqual([ids[2], ids[1]]);
    expect(await idsOf(`?since=${encodeURIComponent(new Date(T0 + 180_000).toISOString())}`)).toEqual([
      ids[4],
      ids[3],
    ]);
    expect(await idsOf('?kind=nothing')).toEqual([]);
  });

  it('filters by a frame object label, case-insensitively', async () => {
    expect(await idsOf('?label=forklift')).toEqual([ids[0]]);
    expect(await idsOf('?label=PERSON')).toEqual([ids[0]]);
    expect(await idsOf('?label=Dog')).toEqual([ids[4]]);
    expect(await idsOf('?label=cat')).toEqual([]);
  });

  it('searches the full text of descriptions, transcripts, translations, summaries, reasons, highlights', async () => {
    expect(await idsOf('?q=forklift')).toEqual([ids[0]]);
    expect(await idsOf('?q=leaking')).toEqual([ids[1]]);
    expect(await idsOf('?q=hilfe')).toEqual([ids[1]]);
    expect(await idsOf('?q=steady')).toEqual([ids[2]]);
    expect(await idsOf('?q=call%20help')).toEqual([ids[1]]);
    expect(await idsOf('?q=cafe')).toEqual([ids[2]]); // diacritics folded
    expect(await idsOf('?q=VALVE')).toEqual([ids[3], ids[2]]); // the cause, and the highlight
    expect(await idsOf('?q=temp*')).toEqual([ids[3]]);
    expect(await idsOf('?q=dog&kind=frame&label=dog')).toEqual([ids[4]]);
    expect(await idsOf('?q=forklift%20boiler')).toEqual([]); // every word must match
  });

  it('pages with an opaque cursor to the end', async () => {
    const first = await page('?limit=2');
    expect(first.results.map((r) => r.id)).toEqual([ids[4], ids[3]]);
    expect(first.next).toEqual(expect.any(String));
    const second = await page(`?limit=2&cursor=${first.next}`);
    expect(second.results.map((r) => r.id)).toEqual([ids[2], ids[1]]);
    const third = await page(`?limit=2&cursor=${second.next}`);
    expect(third.results.map((r) => r.id)).toEqual([ids[0]]);
    expect(third.next).toBeNull();
    // A filter stays applied across pages.
    const frames = await page('?kind=frame&limit=1');
    expect((await page(`?kind=frame&limit=1&cursor=${frames.next}`)).results.map((r) => r.id)).toEqual([
      ids[0],
    ]);
  });

  it('turns hostile and absurd parameters into 400 or nothing, and never into SQL', async () => {
    const hostile = [
      "' OR 1=1 --",
      '"; DROP TABLE results; --',
      'NEAR(',
      '*',
      '"',
      'forklift OR boiler',
      'text:forklift',
      '^forklift',
      '(a',
      '\u0000',
      '%',
      "frame' UNION SELECT * FROM jobs --",
    ];
    const sizes = () => [api.count('results'), api.count('results_fts'), api.count('events')];
    const before = sizes();
    for (const value of hostile) {
      for (const name of ['kind', 'source', 'label', 'q', 'since', 'until', 'cursor', 'limit']) {
        const response = await api.get(`/api/results?${name}=${encodeURIComponent(value)}`);
        const path = `${name}=${JSON.stringify(value)}`;
        expect([200, 400], path).toContain(response.status);
        const body = (await response.json()) as ResultsPageJson & { message?: string };
        // Hostile text is only words to the full-text search: it may find them (NEAR( finds "near").
        if (response.status === 200 && name === 'q') {
          for (const r of body.results) expect(ids, path).toContain(r.id);
        } else if (response.status === 200) expect(body.results, path).toEqual([]);
        else expect(body.message, path).toMatch(new RegExp(`^(querystring/)?${name}|${name}:`));
      }
    }
    const absurd = [
      'limit=-1',
      'limit=0',
      'limit=501',
      'limit=1e9',
      'limit=1.5',
      'limit=abc',
      'since=garbage',
      'until=yesterday',
      `since=${T0}&until=${T0}`,
      'cursor=AAAA',
      'cursor=r99',
      `q=${'x'.repeat(10_000)}`,
      `kind=${'k'.repeat(10_000)}`,
      `source=${'s'.repeat(10_000)}`,
      `label=${'l'.repeat(10_000)}`,
      `cursor=${'c'.repeat(10_000)}`,
      `since=${'9'.repeat(10_000)}`,
      'sort=desc',
      'kind=a&kind=b',
    ];
    for (const query of absurd) {
      const response = await api.get(`/api/results?${query}`);
      expect(response.status, query.slice(0, 40)).toBe(400);
      expect(((await response.json()) as { error: string }).error).toBe('bad-request');
    }
    // Full-text syntax is only ever words: a quoted NEAR( finds the word "near".
    expect(await idsOf(`?q=${encodeURIComponent('NEAR(')}`)).toEqual([ids[0]]);
    expect(await idsOf(`?q=${encodeURIComponent('"forklift" OR "boiler"')}`)).toEqual([]);
    expect(sizes()).toEqual(before);
    for (const id of ["' OR 1=1 --", '../../etc/passwd', '%00']) {
      expect((await api.get(`/api/results/${encodeURIComponent(id)}`)).status).toBe(404);
      expect((await api.get(`/api/results/${encodeURIComponent(id)}/media`)).status).toBe(404);
    }
    expect([400, 414]).toContain((await api.get(`/api/results/${'x'.repeat(200)}`)).status);
    expect((await api.get(`/api/results/${'x'.repeat(80)}`)).status).toBe(400);
  });
});

describe('paging while results are stored', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.close();
  });

  it('never skips or repeats a row when rows are inserted between pages', async () => {
    const stored: string[] = [];
    for (let i = 0; i < 57; i++) stored.push(api.addResult({ ts: T0 + i }));
    const seen: string[] = [];
    let cursor: string | null = null;
    let inserted = 0;
    do {
      const body: ResultsPageJson = await api.json(
        `/api/results?limit=7${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...body.results.map((r) => r.id));
      cursor = body.next;
      // Newer rows land while we page, some with old ts: they belong to the next listing, not this one.
      for (let i = 0; i < 3; i++, inserted++) api.addResult({ ts: T0 - 1000 - inserted });
    } while (cursor);
    expect(inserted).toBeGreaterThan(20);
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual([...stored].reverse());
  });

  it('a page ends exactly at the last row: no empty page after it', async () => {
    const total = api.count('results');
    const body = await api.json<ResultsPageJson>(`/api/results?limit=${total}`);
    expect(body.results).toHaveLength(total);
    expect(body.next).toBeNull();
  });
});

describe('migration 4', () => {
  it('keeps existing results in order, indexes their text, and fills the index as rows come', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'outpost-m4-'));
    const file = join(dir, 'outpost.db');
    const old = openDatabase({ file, migrations: migrations.filter((m) => m.version <= 3) });
    const insert = old.prepare(
      `INSERT INTO results (id, kind, source, ts, created_at, model, variant, latency_ms, output, media)
       VALUES (?, 'frame', 'yard', ?, ?, 'm', 'v', 1, ?, NULL)`,
    );
    insert.run('zeta', 1, 1, JSON.stringify({ description: 'a tractor in the field' }));
    insert.run(
      'alpha',
      2,
      2,
      JSON.stringify({ description: 'an empty field', objects: [{ label: 'Crow' }] }),
    );
    old.close();

    const db = openDatabase({ file });
    const queries = new StoreQueries(db);
    expect(queries.results({ limit: 10 }).results.map((r) => [r.seq, r.id])).toEqual([
      [2, 'alpha'],
      [1, 'zeta'],
    ]);
    expect(queries.results({ text: 'tractor', limit: 10 }).results.map((r) => r.id)).toEqual(['zeta']);
    expect(queries.results({ text: 'field', limit: 10 }).results.map((r) => r.id)).toEqual(['alpha', 'zeta']);
    expect(queries.results({ label: 'crow', limit: 10 }).results.map((r) => r.id)).toEqual(['alpha']);
    // An output that is not JSON (hand-edited) neither fails its insert nor a listing.
    db.prepare(
      `INSERT INTO results (id, kind, source, ts, created_at, output) VALUES ('bad', 'frame', 'yard', 3, 3, '{oops')`,
    ).run();
    expect(queries.results({ label: 'crow', limit: 10 }).results.map((r) => r.id)).toEqual(['alpha']);
    expect(queries.results({ limit: 1 }).results[0]).toMatchObject({ id: 'bad', output: {} });
    // A deleted result leaves the index.
    db.prepare("DELETE FROM results WHERE id = 'zeta'").run();
    expect(queries.results({ text: 'tractor', limit: 10 }).results).toEqual([]);
    db.prepare(
      "UPDATE results SET output = json_object('summary', 'tractor again') WHERE id = 'alpha'",
    ).run();
    expect(queries.results({ text: 'tractor', limit: 10 }).results.map((r) => r.id)).toEqual(['alpha']);
    expect(queries.results({ text: 'empty', limit: 10 }).results).toEqual([]);
    db.close();
    const check = new Database(file, { readonly: true });
    expect(check.prepare('PRAGMA integrity_check').get()).toEqual({ integrity_check: 'ok' });
    check.close();
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('parseResultsQuery (shared with the MQTT query request)', () => {
  it('takes strings from a querystring and numbers from JSON alike', () => {
    const page = encodeCursor(42);
    expect(
      parseResultsQuery({ kind: 'frame', since: T0, until: String(T0 + 1), limit: '10', cursor: page }),
    ).toEqual({
      ok: true,
      value: {
        kind: 'frame',
        source: undefined,
        since: T0,
        until: T0 + 1,
        label: undefined,
        text: undefined,
        before: 42,
        limit: 10,
      },
    });
    expect(parseResultsQuery({})).toMatchObject({ ok: true, value: { limit: 50 } });
    expect(parseResultsQuery({ kind: null, limit: 500 })).toMatchObject({ ok: true, value: { limit: 500 } });
  });

  it('names the parameter at fault', () => {
    const error = (params: Record<string, unknown>, options?: { ignore?: string[] }) => {
      const parsed = parseResultsQuery(params, options);
      return parsed.ok ? undefined : parsed.error;
    };
    expect(error({ transaction: 't1' })).toMatch(/^transaction: unknown filter/);
    expect(error({ transaction: 't1' }, { ignore: ['transaction'] })).toBeUndefined();
    expect(error({ limit: 0 })).toMatch(/^limit:/);
    expect(error({ limit: 2.5 })).toMatch(/^limit:/);
    expect(error({ limit: '1e3' })).toMatch(/^limit:/);
    expect(error({ kind: 5 })).toMatch(/^kind: expected a string/);
    expect(error({ since: -1 })).toMatch(/^since:/);
    expect(error({ since: 1.5 })).toMatch(/^since:/);
    expect(error({ until: 'tomorrow' })).toMatch(/^until:/);
    expect(error({ q: '*** ()' })).toMatch(/^q: no word/);
    expect(error({ cursor: Buffer.from('r042').toString('base64url') })).toMatch(/^cursor:/);
    expect(error({ cursor: Buffer.from('r1 OR 1').toString('base64url') })).toMatch(/^cursor:/);
    expect(error({ cursor: `${encodeCursor(42)}=` })).toMatch(/^cursor:/);
  });

  it('builds full-text queries from words only', () => {
    expect(ftsMatchExpression('forklift gate')).toBe('"forklift" "gate"');
    expect(ftsMatchExpression('fork*')).toBe('"fork" *');
    expect(ftsMatchExpression('say "hi"')).toBe('"say" """hi"""');
    expect(ftsMatchExpression('a b', true)).toBe('"a" OR "b"');
    expect(ftsMatchExpression('NEAR( * OR ^')).toBe('"NEAR(" "OR"'); // OR is a word here
    expect(ftsMatchExpression('- " *')).toBeUndefined();
    expect(decodeCursor(encodeCursor(7))).toBe(7);
  });
});
