import { ftsMatchExpression, type ResultsQuery, type StoreQueries } from '../store/index.js';
import { parseTime } from './params.js';
import { RESULT_SCHEMA, type ResultJson, resultJson } from './rows.js';

/** Limits of the results filters, shared by the HTTP route's schema and `parseResultsQuery`. */
export const RESULTS_LIMITS = {
  kind: 32,
  source: 128,
  label: 100,
  q: 200,
  cursor: 32,
  time: 40,
  maxLimit: 500,
  defaultLimit: 50,
} as const;

/** The querystring schema of `GET /api/results` (documented in the OpenAPI document). */
export const RESULTS_QUERY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    kind: { type: 'string', minLength: 1, maxLength: RESULTS_LIMITS.kind, description: 'result kind' },
    source: {
      type: 'string',
      minLength: 1,
      maxLength: RESULTS_LIMITS.source,
      description: 'device, camera or audio source',
    },
    since: {
      type: 'string',
      maxLength: RESULTS_LIMITS.time,
      description: "the result's ts at or after: ISO 8601 or epoch ms",
    },
    until: {
      type: 'string',
      maxLength: RESULTS_LIMITS.time,
      description: "the result's ts before: ISO 8601 or epoch ms",
    },
    label: {
      type: 'string',
      minLength: 1,
      maxLength: RESULTS_LIMITS.label,
      description: 'a frame object label, case-insensitive',
    },
    q: {
      type: 'string',
      minLength: 1,
      maxLength: RESULTS_LIMITS.q,
      description: 'words to find in what results say (all of them; a trailing * matches a prefix)',
    },
    limit: {
      type: 'integer',
      minimum: 1,
      maximum: RESULTS_LIMITS.maxLimit,
      default: RESULTS_LIMITS.defaultLimit,
    },
    cursor: {
      type: 'string',
      minLength: 1,
      maxLength: RESULTS_LIMITS.cursor,
      description: "the previous page's `next`",
    },
  },
} as const;

/** A page of results as the API answers it. */
export interface ResultsPageJson {
  results: ResultJson[];
  /** the `cursor` of the next page; null on the last one */
  next: string | null;
}

export const RESULTS_PAGE_SCHEMA = {
  type: 'object',
  required: ['results', 'next'],
  properties: {
    results: { type: 'array', items: RESULT_SCHEMA },
    next: { type: ['string', 'null'] },
  },
} as const;

/** A results cursor: opaque to clients; the `seq` of the last result of a page. */
export function encodeCursor(seq: number): string {
  return Buffer.from(`r${seq}`).toString('base64url');
}

/** The `seq` of a cursor, or undefined when it is not one this API made. */
export function decodeCursor(cursor: string): number | undefined {
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(cursor)) return undefined;
  const match = /^r([1-9]\d{0,15})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  const seq = match ? Number(match[1]) : Number.NaN;
  return Number.isSafeInteger(seq) && encodeCursor(seq) === cursor ? seq : undefined;
}

export type ParsedResultsQuery = { ok: true; value: ResultsQuery } | { ok: false; error: string };

export interface ParseResultsQueryOptions {
  /** Keys to pass over (an MQTT request's `transaction`); any other unknown key is an error. */
  ignore?: readonly string[];
}

const KEYS = new Set(Object.keys(RESULTS_QUERY_SCHEMA.properties));

/**
 * Validates the filters of a results query (`GET /api/results`, the MQTT `query` request): kind, source,
 * since, until, label, q, limit, cursor. Values may be strings (a querystring) or numbers (JSON); absent or
 * null means unset. The error names the parameter and what it expects.
 */
export function parseResultsQuery(
  params: Readonly<Record<string, unknown>>,
  options: ParseResultsQueryOptions = {},
): ParsedResultsQuery {
  try {
    return { ok: true, value: readResultsQuery(params, options) };
  } catch (error) {
    if (error instanceof InvalidFilter) return { ok: false, error: error.message };
    throw error;
  }
}

class InvalidFilter extends Error {}

function readResultsQuery(params: Readonly<Record<string, unknown>>, options: ParseResultsQueryOptions) {
  const ignore = new Set(options.ignore ?? []);
  for (const key of Object.keys(params)) {
    if (!KEYS.has(key) && !ignore.has(key)) {
      throw new InvalidFilter(`${key.slice(0, 40)}: unknown filter (known: ${[...KEYS].join(', ')})`);
    }
  }
  const q = text(params, 'q');
  if (q !== undefined && ftsMatchExpression(q) === undefined) {
    throw new InvalidFilter('q: no word to search for (letters or digits)');
  }
  const cursor = text(params, 'cursor');
  const before = cursor === undefined ? undefined : decodeCursor(cursor);
  if (cursor !== undefined && before === undefined) {
    throw new InvalidFilter("cursor: not a cursor of this API (use the previous page's `next`)");
  }
  const since = time(params, 'since');
  const until = time(params, 'until');
  if (since !== undefined && until !== undefined && until <= since) {
    throw new InvalidFilter('until: must be after since');
  }
  const rawLimit = params.limit ?? RESULTS_LIMITS.defaultLimit;
  const limit = typeof rawLimit === 'string' && /^\d{1,6}$/.test(rawLimit) ? Number(rawLimit) : rawLimit;
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > RESULTS_LIMITS.maxLimit) {
    throw new InvalidFilter(`limit: an integer from 1 to ${RESULTS_LIMITS.maxLimit}`);
  }
  return {
    kind: text(params, 'kind'),
    source: text(params, 'source'),
    since,
    until,
    label: text(params, 'label'),
    text: q,
    before,
    limit,
  } satisfies ResultsQuery;
}

function text(
  params: Readonly<Record<string, unknown>>,
  name: 'kind' | 'source' | 'label' | 'q' | 'cursor',
): string | undefined {
  const value = params[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new InvalidFilter(`${name}: expected a string`);
  if (value.length === 0 || value.length > RESULTS_LIMITS[name]) {
    throw new InvalidFilter(`${name}: 1 to ${RESULTS_LIMITS[name]} characters`);
  }
  return value;
}

function time(params: Readonly<Record<string, unknown>>, name: 'since' | 'until'): number | undefined {
  const value = params[name];
  if (value === undefined || value === null) return undefined;
  const ms =
    typeof value === 'number'
      ? Number.isSafeInteger(value) && value >= 0
        ? value
        : undefined
      : typeof value === 'string' && value.length <= RESULTS_LIMITS.time
        ? parseTime(value)
        : undefined;
  if (ms === undefined) throw new InvalidFilter(`${name}: expected ISO 8601 or epoch milliseconds`);
  return ms;
}

/** Validates and runs a results query: the answer of `GET /api/results`, or why the query is refused. */
export function runResultsQuery(
  queries: Pick<StoreQueries, 'results'>,
  params: Readonly<Record<string, unknown>>,
  options: ParseResultsQueryOptions = {},
): { ok: true; value: ResultsPageJson } | { ok: false; error: string } {
  const parsed = parseResultsQuery(params, options);
  if (!parsed.ok) return parsed;
  const page = queries.results(parsed.value);
  return {
    ok: true,
    value: {
      results: page.results.map(resultJson),
      next: page.next === null ? null : encodeCursor(page.next),
    },
  };
}
