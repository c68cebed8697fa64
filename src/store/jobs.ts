import { randomUUID } from 'node:crypto';
import type { SqliteDatabase } from './database.js';

/**
 * queued -> running -> done | failed; queued jobs wait in `waiting-model` while no model is resident and in
 * `waiting-capability` while the resident one cannot take their media; `dropped` is final: a newer frame
 * of the same camera replaced the job before it ran.
 */
export type JobState =
  | 'queued'
  | 'running'
  | 'waiting-model'
  | 'waiting-capability'
  | 'done'
  | 'failed'
  | 'dropped';

/** The states a job still runs from. */
const OPEN = "('queued', 'waiting-model', 'waiting-capability')";

export interface NewJob {
  kind: string;
  source: string;
  route?: string | undefined;
  priority?: number | undefined;
  input: Record<string, unknown>;
}

export interface JobRow {
  id: string;
  kind: string;
  source: string;
  route: string | null;
  state: JobState;
  priority: number;
  input: Record<string, unknown>;
  attempts: number;
  reason: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

export interface NewResult {
  /** the job's id */
  id: string;
  kind: string;
  source: string;
  /** epoch ms of what the result is about */
  ts: number;
  model: string;
  variant: string;
  latencyMs: number;
  output: Record<string, unknown>;
  /** media path (thumbnail or clip) of the result */
  media?: string | undefined;
}

interface RawJob {
  id: string;
  kind: string;
  source: string;
  route: string | null;
  state: JobState;
  priority: number;
  input: string;
  attempts: number;
  reason: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

const toJob = (row: RawJob): JobRow => ({
  id: row.id,
  kind: row.kind,
  source: row.source,
  route: row.route,
  state: row.state,
  priority: row.priority,
  input: JSON.parse(row.input) as Record<string, unknown>,
  attempts: row.attempts,
  reason: row.reason,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
  finishedAt: row.finished_at,
});

/** The job queue in SQLite: jobs survive restarts; one running at a time is the runner's rule. */
export class JobTable {
  readonly #stmt;

  constructor(db: SqliteDatabase) {
    this.#stmt = {
      insert: db.prepare(
        `INSERT INTO jobs (id, kind, source, route, state, priority, input, created_at, updated_at)
         VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?)`,
      ),
      next: db.prepare<[], RawJob>(
        "SELECT * FROM jobs WHERE state = 'queued' ORDER BY priority DESC, created_at, rowid LIMIT 1",
      ),
      get: db.prepare<[string], RawJob>('SELECT * FROM jobs WHERE id = ?'),
      start: db.prepare(
        `UPDATE jobs SET state = 'running', attempts = attempts + 1, reason = NULL, updated_at = ? WHERE id = ? AND state IN ${OPEN}`,
      ),
      requeue: db.prepare(
        "UPDATE jobs SET state = 'queued', attempts = max(0, attempts - 1), reason = ?, updated_at = ? WHERE id = ?",
      ),
      isOpen: db.prepare<[string], { n: number }>(
        `SELECT count(*) AS n FROM jobs WHERE id = ? AND state IN ${OPEN}`,
      ),
      set: db.prepare('UPDATE jobs SET state = ?, reason = ?, updated_at = ?, finished_at = ? WHERE id = ?'),
      wakeWaiting: db.prepare(
        "UPDATE jobs SET state = 'queued', updated_at = ? WHERE state = 'waiting-model'",
      ),
      parkQueued: db.prepare(
        "UPDATE jobs SET state = 'waiting-model', reason = ?, updated_at = ? WHERE state IN ('queued', 'waiting-model')",
      ),
      resume: db.prepare(
        "UPDATE jobs SET state = 'queued', reason = 'resumed after a restart', updated_at = ? WHERE state = 'running'",
      ),
      waitingSummary: db.prepare<[], { state: JobState; kind: string; reason: string | null; n: number }>(
        `SELECT state, kind, reason, count(*) AS n FROM jobs
         WHERE state IN ('waiting-model', 'waiting-capability') GROUP BY state, kind, reason ORDER BY n DESC LIMIT 20`,
      ),
      counts: db.prepare<[], { state: JobState; n: number }>(
        'SELECT state, count(*) AS n FROM jobs GROUP BY state',
      ),
      list: db.prepare<{ state: string | null; limit: number }, RawJob>(
        'SELECT * FROM jobs WHERE (@state IS NULL OR state = @state) ORDER BY created_at DESC, rowid DESC LIMIT @limit',
      ),
      result: db.prepare(
        `INSERT INTO results (id, kind, source, ts, created_at, model, variant, latency_ms, output, media)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      open: db.prepare<[string, string], { n: number }>(
        `SELECT count(*) AS n FROM jobs WHERE kind = ? AND source = ? AND (state IN ${OPEN} OR state = 'running')`,
      ),
      waiting: db.prepare<[string, string], RawJob>(
        `SELECT * FROM jobs WHERE kind = ? AND source = ? AND state IN ${OPEN} ORDER BY created_at, rowid`,
      ),
      sources: db.prepare<[string, string], { source: string }>(
        'SELECT source FROM jobs WHERE kind = ? UNION SELECT source FROM results WHERE kind = ? ORDER BY source',
      ),
      waitingCapability: db.prepare<[], { kind: string }>(
        "SELECT DISTINCT kind FROM jobs WHERE state = 'waiting-capability'",
      ),
      wakeKind: db.prepare(
        "UPDATE jobs SET state = 'queued', updated_at = ? WHERE state = 'waiting-capability' AND kind = ?",
      ),
      pruneJobs: db.prepare(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state IN ('done', 'failed', 'dropped') AND finished_at < ? LIMIT 5000)",
      ),
    };
  }

  add(job: NewJob, now: number): string {
    const id = randomUUID();
    this.#stmt.insert.run(
      id,
      job.kind,
      job.source,
      job.route ?? null,
      job.priority ?? 0,
      JSON.stringify(job.input),
      now,
      now,
    );
    return id;
  }

  /** Whether a job of this kind and source is still to run (queued, waiting or running). */
  hasOpen(kind: string, source: string): boolean {
    return this.#stmt.open.get(kind, source)!.n > 0;
  }

  /** The next queued job: highest priority, then oldest. */
  next(): JobRow | undefined {
    const row = this.#stmt.next.get();
    return row ? toJob(row) : undefined;
  }

  get(id: string): JobRow | undefined {
    const row = this.#stmt.get.get(id);
    return row ? toJob(row) : undefined;
  }

  /** Marks a job running and counts the attempt. */
  /**
   * Marks a job running and counts the attempt; false when it is no longer open (a newer frame superseded
   * it, or it was dropped, while the runner waited for the model): then it must not run.
   */
  start(id: string, now: number): boolean {
    return this.#stmt.start.run(now, id).changes === 1;
  }

  /** Queues a running job again and gives back the attempt it spent (it was not the job's fault). */
  requeueWithoutAttempt(id: string, reason: string, now: number): void {
    this.#stmt.requeue.run(reason, now, id);
  }

  /** Whether the job is still to run (queued or waiting). */
  isOpen(id: string): boolean {
    return this.#stmt.isOpen.get(id)!.n === 1;
  }

  /**
   * Drops the jobs of `kind` and `source` that have not started (queued or waiting): a newer one replaces
   * them. Returns them, so their media can be deleted. Call in the transaction that adds the new job.
   */
  supersede(kind: string, source: string, reason: string, now: number): JobRow[] {
    return this.trim(kind, source, 0, reason, now);
  }

  /**
   * Keeps at most `keep` jobs of `kind` and `source` that have not started: older ones beyond it are
   * dropped with `reason` and returned. Call in the transaction that adds a job.
   */
  trim(kind: string, source: string, keep: number, reason: string, now: number): JobRow[] {
    const rows = this.#stmt.waiting.all(kind, source).map(toJob);
    const dropped = rows.slice(0, Math.max(0, rows.length - keep));
    for (const row of dropped) this.set(row.id, 'dropped', reason, now);
    return dropped;
  }

  /** Sources that have jobs or results of `kind` (cameras, audio sources), sorted. */
  sources(kind: string): string[] {
    return this.#stmt.sources.all(kind, kind).map((row) => row.source);
  }

  /** Job kinds that wait for a capability the resident model lacks. */
  kindsWaitingCapability(): string[] {
    return this.#stmt.waitingCapability.all().map((row) => row.kind);
  }

  /** The resident model can now run jobs of `kind`: those waiting for a capability are queued. */
  wakeKind(kind: string, now: number): number {
    return this.#stmt.wakeKind.run(now, kind).changes;
  }

  /** Moves a job to a state; done, failed and dropped are final and stamped. */
  set(id: string, state: JobState, reason: string | null, now: number): void {
    const final = state === 'done' || state === 'failed' || state === 'dropped';
    this.#stmt.set.run(state, reason, now, final ? now : null, id);
  }

  /** Every queued job waits for a model, with the reason shown in status and the API. */
  parkAll(reason: string, now: number): number {
    return this.#stmt.parkQueued.run(reason, now).changes;
  }

  /** A model is resident again: waiting jobs are queued. */
  wakeWaiting(now: number): number {
    return this.#stmt.wakeWaiting.run(now).changes;
  }

  /** Jobs left running by a crash or a stop are queued again at start. */
  resumeRunning(now: number): number {
    return this.#stmt.resume.run(now).changes;
  }

  counts(): Record<JobState, number> {
    const counts: Record<JobState, number> = {
      queued: 0,
      running: 0,
      'waiting-model': 0,
      'waiting-capability': 0,
      done: 0,
      failed: 0,
      dropped: 0,
    };
    for (const row of this.#stmt.counts.all()) counts[row.state] = row.n;
    return counts;
  }

  /** What waits, and why: jobs by state, kind and reason (for status). */
  waiting(): { state: JobState; kind: string; reason: string | null; jobs: number }[] {
    return this.#stmt.waitingSummary.all().map(({ n, ...rest }) => ({ ...rest, jobs: n }));
  }

  list(state: JobState | undefined, limit: number): JobRow[] {
    return this.#stmt.list.all({ state: state ?? null, limit }).map(toJob);
  }

  /** Stores a result; call in the transaction that marks its job done and queues its message. */
  insertResult(result: NewResult, now: number): void {
    const r = result;
    this.#stmt.result.run(
      r.id,
      r.kind,
      r.source,
      r.ts,
      now,
      r.model,
      r.variant,
      Math.round(r.latencyMs),
      JSON.stringify(r.output),
      r.media ?? null,
    );
  }

  /** Deletes finished (done, failed, dropped) jobs older than `before`; their results stay. */
  prune(before: number): number {
    return this.#stmt.pruneJobs.run(before).changes;
  }
}
