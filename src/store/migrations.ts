/**
 * Numbered schema migrations. Each runs once, in order, inside a transaction, and is recorded in the
 * `migrations` table. Never edit a released migration: add the next number.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
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
];
