/**
 * Numbered schema migrations. Each runs once, in order, inside a transaction, and is recorded in the
 * `migrations` table. Never edit a released migration: add the next number.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/**
 * The searchable text of a result's output (SQL over the JSON column `column`): what the tasks write in
 * words (descriptions, transcripts, translations, summaries, causes, actions, alert reasons, highlights).
 * Output that is not JSON yields no text rather than failing the insert of a finished job's result.
 */
function resultText(column: string): string {
  const fields = [
    'description',
    'transcript',
    'translation',
    'summary',
    'likelyCause',
    'action',
    'alertReason',
  ];
  const values = fields.map((f) => `json_extract(${column}, '$.${f}')`);
  const highlights = `(SELECT group_concat(value, ' ') FROM json_each(${column}, '$.highlights'))`;
  return `CASE WHEN json_valid(${column}) THEN concat_ws(' ', ${[...values, highlights].join(', ')}) ELSE '' END`;
}

export const migrations: readonly Migration[] = [
  {
    version: 1,
    name: 'journal, readings, windows, events, rejects, results, outbox',
    sql: `
      -- Every accepted message, committed before it is acknowledged to the broker. Append-only: the
      -- pipeline's progress is one watermark in pipeline_state, so a commit touches one B-tree.
      CREATE TABLE journal (
        id INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,          -- epoch ms, commit time
        route TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        content_type TEXT,
        digest BLOB NOT NULL                   -- sha1(topic NUL payload): duplicate recognition
      );

      -- key 'journal': id of the last journal entry the pipeline has committed the output of.
      CREATE TABLE pipeline_state (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
      );
      INSERT INTO pipeline_state (key, value) VALUES ('journal', 0);

      CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        device TEXT NOT NULL,
        metric TEXT NOT NULL,
        unit TEXT,
        UNIQUE (device, metric)
      );

      CREATE TABLE readings (
        series_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,                   -- epoch ms, the source's time
        value REAL NOT NULL,
        journal_id INTEGER NOT NULL
      );
      -- The one index: every reading insert pays for each (retention prunes series by series).
      CREATE INDEX readings_series_ts ON readings (series_id, ts);

      CREATE TABLE windows (
        series_id INTEGER NOT NULL,
        start INTEGER NOT NULL,
        end INTEGER NOT NULL,
        count INTEGER NOT NULL,
        min REAL NOT NULL,
        max REAL NOT NULL,
        mean REAL NOT NULL,
        std REAL NOT NULL,
        PRIMARY KEY (series_id, start)
      ) WITHOUT ROWID;

      CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        severity TEXT NOT NULL,
        message TEXT NOT NULL,
        detail TEXT NOT NULL                   -- JSON
      );
      CREATE INDEX events_ts ON events (ts);
      CREATE INDEX events_source_ts ON events (source, ts);

      CREATE TABLE rejects (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        route TEXT,
        topic TEXT NOT NULL,
        code TEXT NOT NULL,
        reason TEXT NOT NULL,
        size INTEGER NOT NULL
      );
      CREATE INDEX rejects_ts ON rejects (ts);

      -- One row per finished model job (filled by the inference stage).
      CREATE TABLE results (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        ts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        model TEXT,
        variant TEXT,
        latency_ms INTEGER,
        output TEXT NOT NULL                   -- JSON, schema-valid
      );
      CREATE INDEX results_kind_ts ON results (kind, ts);

      -- Messages waiting for the broker's acknowledgement, drained in id order.
      CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at INTEGER NOT NULL,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'jobs',
    sql: `
      -- Model jobs. A job yields one result row (results.id = jobs.id) and one published result.
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,                    -- explain | digest
        source TEXT NOT NULL,                  -- device, camera or audio source
        route TEXT,
        state TEXT NOT NULL,                   -- queued | running | waiting-model | done | failed
        priority INTEGER NOT NULL DEFAULT 0,
        input TEXT NOT NULL,                   -- JSON
        attempts INTEGER NOT NULL DEFAULT 0,
        reason TEXT,                           -- why it waits, or why it failed
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        finished_at INTEGER
      );
      CREATE INDEX jobs_runnable ON jobs (state, priority DESC, created_at);
    `,
  },
  {
    version: 3,
    name: 'media files, result media',
    sql: `
      -- Files under <dataDir>/media (thumbnails, model inputs, clips). A row is committed only after its
      -- file is written; retention deletes the oldest by age and by total bytes, row and file together.
      CREATE TABLE media (
        path TEXT PRIMARY KEY,                 -- relative to <dataDir>/media
        source TEXT NOT NULL,                  -- camera or audio source
        kind TEXT NOT NULL,                    -- thumbnail | input
        bytes INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX media_created ON media (created_at);
      -- job states now also: waiting-capability (the resident model cannot take the job's media) and
      -- dropped (superseded by a newer frame of the same camera).
      ALTER TABLE results ADD COLUMN media TEXT;  -- path of the result's thumbnail or clip
    `,
  },
  {
    version: 4,
    name: 'results in insertion order, full-text index',
    sql: `
      -- The results table again, with an explicit INTEGER PRIMARY KEY: an implicit rowid may be renumbered
      -- by VACUUM, and the HTTP API's cursors and the full-text index are keyed on it. AUTOINCREMENT: a seq
      -- is never reused, so a cursor never meets a row it has not seen under a number it has.
      CREATE TABLE results_v4 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, -- insertion order: API cursors, the FTS rowid
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        source TEXT NOT NULL,
        ts INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        model TEXT,
        variant TEXT,
        latency_ms INTEGER,
        output TEXT NOT NULL,                  -- JSON, schema-valid
        media TEXT                             -- path of the result's thumbnail or clip
      );
      INSERT INTO results_v4 (id, kind, source, ts, created_at, model, variant, latency_ms, output, media)
        SELECT id, kind, source, ts, created_at, model, variant, latency_ms, output, media
          FROM results ORDER BY rowid;
      DROP TABLE results;
      ALTER TABLE results_v4 RENAME TO results;
      CREATE INDEX results_kind_ts ON results (kind, ts);
      -- Equality on kind or source, then seq order: pages read no more rows than they return.
      CREATE INDEX results_kind_seq ON results (kind, seq);
      CREATE INDEX results_source_seq ON results (source, seq);

      -- Full text of what a result says, for /api/results?q=. Contentless (the text lives in results.output):
      -- only rowids come back; contentless_delete lets a deleted result leave the index.
      CREATE VIRTUAL TABLE results_fts USING fts5(
        text, content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2'
      );
      INSERT INTO results_fts (rowid, text) SELECT seq, ${resultText('output')} FROM results;
      CREATE TRIGGER results_fts_insert AFTER INSERT ON results BEGIN
        INSERT INTO results_fts (rowid, text) VALUES (new.seq, ${resultText('new.output')});
      END;
      CREATE TRIGGER results_fts_delete AFTER DELETE ON results BEGIN
        DELETE FROM results_fts WHERE rowid = old.seq;
      END;
      CREATE TRIGGER results_fts_update AFTER UPDATE OF output ON results BEGIN
        DELETE FROM results_fts WHERE rowid = old.seq;
        INSERT INTO results_fts (rowid, text) VALUES (new.seq, ${resultText('new.output')});
      END;
    `,
  },
  {
    version: 5,
    name: 'outbox classes and targets',
    sql: `
      -- The class decides what goes first when the outbox is full (store.outbox.policy); the target is the
      -- connection that sends it: the gateway's broker (local) or the fleet's upstream broker (uplink).
      ALTER TABLE outbox ADD COLUMN class TEXT NOT NULL DEFAULT 'results';
      ALTER TABLE outbox ADD COLUMN target TEXT NOT NULL DEFAULT 'local';
      UPDATE outbox SET class = CASE
        WHEN topic LIKE '%/events/%' THEN 'events'
        WHEN topic LIKE '%/windows/%' THEN 'windows'
        WHEN topic LIKE '%/errors' THEN 'errors'
        ELSE 'results' END;
      CREATE INDEX outbox_target ON outbox (target, id);
      CREATE INDEX outbox_class ON outbox (target, class, id);
    `,
  },
];
