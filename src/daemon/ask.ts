import type { Clock } from '../common/index.js';
import type { JobRunner } from '../inference/index.js';
import type { ResultRow, Store, StoreQueries } from '../store/index.js';

/** Which findings a question may draw on. */
export interface FindingWindow {
  since: number | undefined;
  until: number | undefined;
  kinds: string[] | undefined;
}

/** A question for the gateway (POST /api/ask, the MQTT `ask` request). */
export interface AskRequest {
  question: string;
  /** ISO 8601 or epoch ms: only findings about this time or later */
  since?: string | number | undefined;
  until?: string | number | undefined;
  /** only findings of these kinds (frame, audio, anomaly, digest) */
  kinds?: readonly string[] | undefined;
}

export interface AskAnswer {
  answer: string;
  /** ids of the stored findings the answer used (among those offered) */
  results: string[];
  /** how many findings the model was offered */
  offered: number;
  /** the ask job, also the id of its stored result */
  job: string;
  model: string | null;
  latencyMs: number | null;
}

/** Why a question got no answer; `statusCode` is the HTTP status to give. */
export class AskError extends Error {
  override readonly name = 'AskError';
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface AskOptions {
  store: Store;
  runner: Pick<JobRunner, 'wake'>;
  /** the stored findings most relevant to a question, newest first */
  retrieve: (question: string, window: FindingWindow, limit: number) => ResultRow[];
  priority: number;
  timeoutMs: number;
  clock: Clock;
  /** where the question came from (http, mqtt): the source of its job and result */
  source?: string;
}

/** Findings offered to the model at most: their summaries must fit the context with the question. */
const OFFERED = 12;
const POLL_MS = 100;

/**
 * Asks the resident model a question about what the gateway found: retrieves the relevant stored
 * findings (full text and time window), queues an `ask` job behind the pipeline's jobs (with its own
 * priority), and waits for its schema-constrained answer, whose ids can only be among the findings offered.
 */
export function createAsk(options: AskOptions): (request: AskRequest, source?: string) => Promise<AskAnswer> {
  const { store, clock } = options;
  return async (request, source = options.source ?? 'http') => {
    const question = request.question.trim();
    if (question.length === 0 || question.length > 500)
      throw new AskError(400, 'question: 1 to 500 characters');
    const since = time(request.since, 'since');
    const until = time(request.until, 'until');
    const kinds = request.kinds?.length ? [...request.kinds] : undefined;
    const findings = options.retrieve(question, { since, until, kinds }, OFFERED).map(summarize);
    const job = store.jobs.add(
      {
        kind: 'ask',
        source,
        priority: options.priority,
        input: {
          question,
          findings,
          ...(since === undefined ? {} : { since }),
          ...(until === undefined ? {} : { until }),
        },
      },
      clock.now(),
    );
    options.runner.wake();
    const deadline = clock.monotonic() + options.timeoutMs;
    for (;;) {
      const row = store.jobs.get(job);
      if (row?.state === 'done') {
        const result = store.queries.result(job);
        const output = (result?.output ?? {}) as { answer?: string; results?: string[] };
        return {
          answer: output.answer ?? '',
          results: output.results ?? [],
          offered: findings.length,
          job,
          model: result?.model ?? null,
          latencyMs: result?.latencyMs ?? null,
        };
      }
      if (row?.state === 'failed') throw new AskError(502, `the model could not answer: ${row.reason}`);
      if (clock.monotonic() > deadline) {
        // Nobody waits for the answer any more: the job goes.
        store.jobs.set(job, 'dropped', 'the question timed out before it was answered', clock.now());
        const why = row?.reason ? `: ${row.reason}` : '';
        throw new AskError(504, `no answer within inference.askTimeout (${row?.state ?? 'gone'}${why})`);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  };
}

/**
 * The findings a question is about, at most `limit`, answers to earlier questions left out: first those
 * of a source the question names (pump1, yard), then full-text matches of any of its words, then the most
 * recent ones in the window, so "what happened today?" still gets something to answer from.
 */
export function retrieveFindings(
  queries: Pick<StoreQueries, 'results'>,
): (question: string, window: FindingWindow, limit: number) => ResultRow[] {
  return (question, { since, until, kinds }, limit) => {
    const found = new Map<string, ResultRow>();
    const add = (rows: ResultRow[]) => {
      for (const row of rows) {
        if (found.size < limit && row.kind !== 'ask' && (!kinds || kinds.includes(row.kind)))
          found.set(row.id, row);
      }
    };
    const words = [...new Set(question.toLowerCase().match(/[\p{L}\p{N}][\p{L}\p{N}._-]*/gu) ?? [])];
    // Each kind asked for is queried on its own, so one busy kind cannot crowd out another.
    for (const kind of kinds ?? [undefined]) {
      const base = { kind, since, until };
      for (const word of words.slice(0, 20)) add(queries.results({ ...base, source: word, limit }).results);
      add(queries.results({ ...base, text: question, anyWord: true, limit: limit * 2 }).results);
      add(queries.results({ ...base, limit: limit * 2 }).results);
    }
    return [...found.values()];
  };
}

function time(value: string | number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = typeof value === 'number' ? value : /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw new AskError(400, `${name}: expected ISO 8601 or epoch milliseconds`);
  return ms;
}

/** What the model sees of a finding: its id, kind, source, time and the text that says what it was. */
function summarize(row: ResultRow): { id: string; kind: string; source: string; at: string; said: string } {
  const o = row.output as Record<string, unknown>;
  const said = [o.description, o.transcript, o.summary, o.alertReason, o.likelyCause]
    .filter((x): x is string => typeof x === 'string' && x.length > 0)
    .join(' / ')
    .slice(0, 300);
  return { id: row.id, kind: row.kind, source: row.source, at: new Date(row.ts).toISOString(), said };
}
