import type { FastifyReply } from 'fastify';
import type { StoreQueries } from '../store/index.js';
import { sendMediaFile } from './mediaRange.js';
import { parseDuration, parseTime } from './params.js';
import { RESULTS_PAGE_SCHEMA, RESULTS_QUERY_SCHEMA, runResultsQuery } from './resultsQuery.js';
import { EVENT_SCHEMA, eventJson, RESULT_SCHEMA, resultJson } from './rows.js';
import type { ApiApp } from './server.js';

/** Most buckets one /api/readings answer may hold. */
const MAX_BUCKETS = 10_000;

const timeParam = { type: 'string', maxLength: 40, description: 'ISO 8601 or epoch ms' } as const;

export interface DataRoutesOptions {
  queries: StoreQueries;
  /** Absolute path of a stored media file. */
  mediaFile: (path: string) => string;
  now: () => number;
}

/** The stored data: readings, events, results and their media. */
export function registerDataRoutes(app: ApiApp, options: DataRoutesOptions): void {
  const { queries } = options;

  app.get(
    '/api/readings',
    {
      schema: {
        summary: 'The sensor series, or one series in time buckets',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            series: { type: 'string', maxLength: 300, description: '<device>/<metric>' },
            device: { type: 'string', maxLength: 128 },
            metric: { type: 'string', maxLength: 128 },
            from: { ...timeParam, description: 'ISO 8601 or epoch ms; default an hour before `to`' },
            to: { ...timeParam, description: 'ISO 8601 or epoch ms; default now' },
            bucket: {
              type: 'string',
              maxLength: 20,
              description: 'bucket length: 60, 30s, 5m, 1h; default 60s',
            },
          },
        },
      },
    },
    async (request, reply) => {
      const q = request.query as Record<string, string | undefined>;
      let device = q.device;
      let metric = q.metric;
      if (q.series !== undefined) {
        const slash = q.series.indexOf('/');
        if (slash <= 0) return badRequest(reply, 'series: expected <device>/<metric>');
        device = q.series.slice(0, slash);
        metric = q.series.slice(slash + 1);
      }
      if (device === undefined || metric === undefined) {
        return { series: queries.series().map((s) => ({ series: `${s.device}/${s.metric}`, ...s })) };
      }
      const now = options.now();
      const to = q.to === undefined ? now : parseTime(q.to);
      const from = q.from === undefined && to !== undefined ? to - 3600_000 : parseTime(q.from ?? '');
      const bucketMs = parseDuration(q.bucket ?? '60s');
      if (from === undefined) return badRequest(reply, 'from: expected ISO 8601 or epoch milliseconds');
      if (to === undefined) return badRequest(reply, 'to: expected ISO 8601 or epoch milliseconds');
      if (bucketMs === undefined)
        return badRequest(reply, 'bucket: expected a duration such as 60, 30s, 5m or 1h');
      if (to <= from) return badRequest(reply, 'to: must be after from');
      if ((to - from) / bucketMs > MAX_BUCKETS) {
        return badRequest(
          reply,
          `bucket: ${q.bucket ?? '60s'} makes more than ${MAX_BUCKETS} buckets; widen it`,
        );
      }
      const points = queries.readingBuckets({ device, metric, from, to, bucketMs });
      return {
        series: `${device}/${metric}`,
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        bucketSeconds: bucketMs / 1000,
        points: points.map((p) => ({
          t: new Date(p.t).toISOString(),
          count: p.count,
          min: p.min,
          max: p.max,
          mean: p.mean,
        })),
      };
    },
  );

  app.get(
    '/api/events',
    {
      schema: {
        summary: 'Sensor anomalies and alerts, newest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            source: { type: 'string', maxLength: 128 },
            kind: { type: 'string', maxLength: 32 },
            since: timeParam,
            until: timeParam,
            before: { type: 'integer', minimum: 1, description: "the previous page's `next`" },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['events', 'next'],
            properties: {
              events: { type: 'array', items: EVENT_SCHEMA },
              next: { type: ['integer', 'null'] },
            },
          },
        },
      },
    },
    async (request, reply) => {
      const q = request.query as {
        source?: string;
        kind?: string;
        since?: string;
        until?: string;
        before?: number;
        limit: number;
      };
      const since = q.since === undefined ? undefined : parseTime(q.since);
      const until = q.until === undefined ? undefined : parseTime(q.until);
      if (q.since !== undefined && since === undefined)
        return badRequest(reply, 'since: expected ISO 8601 or epoch milliseconds');
      if (q.until !== undefined && until === undefined)
        return badRequest(reply, 'until: expected ISO 8601 or epoch milliseconds');
      const rows = queries.events({
        source: q.source,
        kind: q.kind,
        since,
        until,
        before: q.before,
        limit: q.limit,
      });
      return {
        events: rows.map(eventJson),
        next: rows.length === q.limit ? (rows.at(-1)?.id ?? null) : null,
      };
    },
  );

  app.get(
    '/api/results',
    {
      schema: {
        summary: 'Stored findings, newest stored first; page with `cursor`',
        querystring: RESULTS_QUERY_SCHEMA,
        response: { 200: RESULTS_PAGE_SCHEMA },
      },
    },
    async (request, reply) => {
      const answer = runResultsQuery(queries, request.query as Record<string, unknown>);
      return answer.ok ? answer.value : badRequest(reply, answer.error);
    },
  );

  const resultParams = {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  } as const;

  app.get(
    '/api/results/:id',
    {
      schema: {
        summary: 'One stored finding',
        params: resultParams,
        errors: { 404: 'no result with this id' },
        response: { 200: RESULT_SCHEMA },
      },
    },
    async (request, reply) => {
      const row = queries.result((request.params as { id: string }).id);
      return row ? resultJson(row) : notFound(reply, 'no result with this id');
    },
  );

  // The result's thumbnail (frames) or clip (audio). Its file may be gone to media retention: 404 with why.
  app.get(
    '/api/results/:id/media',
    {
      schema: {
        summary: "A finding's thumbnail or clip; byte ranges (Range: bytes=a-b) answered with 206",
        params: resultParams,
        headers: {
          type: 'object',
          properties: { range: { type: 'string', maxLength: 100, description: 'bytes=<first>-<last>' } },
        },
        produces: ['image/jpeg', 'audio/wav', 'application/octet-stream'],
        errors: {
          404: 'no such result, no media, or its file was deleted by retention',
          416: 'the range starts past the end of the file',
        },
      },
    },
    async (request, reply) => {
      const row = queries.result((request.params as { id: string }).id);
      if (!row) return notFound(reply, 'no result with this id');
      if (!row.media) return notFound(reply, 'this result has no media');
      const sent = await sendMediaFile(options.mediaFile(row.media), request.headers.range, reply);
      if (!sent) {
        return notFound(
          reply,
          'the media file was deleted by retention (store.mediaDays, store.mediaMaxBytes)',
        );
      }
      return reply;
    },
  );
}

export async function notFound(reply: FastifyReply, message: string) {
  return reply.code(404).send({ error: 'not-found', message });
}

export async function badRequest(reply: FastifyReply, message: string) {
  return reply.code(400).send({ error: 'bad-request', message });
}
