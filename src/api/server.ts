import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Fastify from 'fastify';
import type { Logger } from '../common/index.js';
import type { EventRow, StoreQueries } from '../store/index.js';
import { parseDuration, parseTime } from './params.js';

export interface ApiServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Bearer token for every route but /healthz; absent: no authentication (loopback only). */
  token?: string | undefined;
  queries: StoreQueries;
  /** Absolute path of a stored media file (thumbnails, clips). */
  mediaFile: (path: string) => string;
  /** The gateway's state for /api/status. */
  status: () => Record<string, unknown>;
  /** Readiness checks for /readyz: name -> ok. */
  readiness: () => Record<string, boolean>;
  logger: Logger;
  now: () => number;
}

export interface ApiServer {
  readonly url: string;
  close(): Promise<void>;
}

/** Most buckets one /api/readings answer may hold. */
const MAX_BUCKETS = 10_000;

const timeParam = { type: 'string', maxLength: 40 } as const;

/** The LAN API: health, readiness, status, readings and events. */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  // Fastify's own request logging stays off: a busy LAN dashboard would flood the board's log.
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    // An unknown query parameter (a typo such as `sinec`) is an error, not silently dropped.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true } },
  });
  const loop = monitorEventLoopDelay({ resolution: 20 });
  loop.enable();

  if (options.token) {
    const expected = Buffer.from(`Bearer ${options.token}`);
    app.addHook('onRequest', async (request, reply) => {
      if (request.url === '/healthz') return;
      const given = Buffer.from(request.headers.authorization ?? '');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        await reply
          .code(401)
          .header('www-authenticate', 'Bearer')
          .send({ error: 'unauthorized', message: 'a valid bearer token is required' });
      }
    });
  }
  app.setErrorHandler(async (error: { statusCode?: number; message: string }, _request, reply) => {
    const status = error.statusCode && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) options.logger.error({ err: error }, 'API request failed');
    await reply
      .code(status)
      .send({ error: status === 500 ? 'internal' : 'bad-request', message: error.message });
  });

  app.get('/healthz', async () => ({
    status: 'ok',
    uptimeSeconds: Math.round(process.uptime()),
    eventLoopDelayMs: Math.round(loop.percentile(99) / 1e5) / 10,
  }));

  app.get('/readyz', async (_request, reply) => {
    const checks = options.readiness();
    const ready = Object.values(checks).every(Boolean);
    await reply.code(ready ? 200 : 503).send({ ready, checks });
  });

  app.get('/api/status', async () => options.status());

  app.get(
    '/api/readings',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            series: { type: 'string', maxLength: 300 },
            device: { type: 'string', maxLength: 128 },
            metric: { type: 'string', maxLength: 128 },
            from: timeParam,
            to: timeParam,
            bucket: { type: 'string', maxLength: 20 },
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
        return { series: options.queries.series().map((s) => ({ series: `${s.device}/${s.metric}`, ...s })) };
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
      const points = options.queries.readingBuckets({ device, metric, from, to, bucketMs });
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
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            source: { type: 'string', maxLength: 128 },
            kind: { type: 'string', maxLength: 32 },
            since: timeParam,
            until: timeParam,
            before: { type: 'integer', minimum: 1 },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
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
      const rows = options.queries.events({
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

  const resultParams = {
    type: 'object',
    properties: { id: { type: 'string', minLength: 1, maxLength: 64 } },
  } as const;

  app.get('/api/results/:id', { schema: { params: resultParams } }, async (request, reply) => {
    const row = options.queries.result((request.params as { id: string }).id);
    if (!row) return notFound(reply, 'no result with this id');
    const { media, ...rest } = row;
    return {
      ...rest,
      ts: new Date(row.ts).toISOString(),
      createdAt: new Date(row.createdAt).toISOString(),
      media: media ? `/api/results/${row.id}/media` : null,
    };
  });

  // The result's thumbnail (frames). Its file may be gone to media retention: 404 with the reason.
  app.get('/api/results/:id/media', { schema: { params: resultParams } }, async (request, reply) => {
    const row = options.queries.result((request.params as { id: string }).id);
    if (!row) return notFound(reply, 'no result with this id');
    if (!row.media) return notFound(reply, 'this result has no media');
    const type = MEDIA_TYPES[extname(row.media)];
    let body: Buffer;
    try {
      body = await readFile(options.mediaFile(row.media));
    } catch {
      return notFound(
        reply,
        'the media file was deleted by retention (store.mediaDays, store.mediaMaxBytes)',
      );
    }
    return reply
      .header('content-type', type ?? 'application/octet-stream')
      .header('cache-control', 'private, max-age=86400, immutable')
      .send(body);
  });

  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closed = false;
  return {
    url: `http://${host}:${port}`,
    async close() {
      if (closed) return;
      closed = true;
      loop.disable();
      await app.close();
    },
  };
}

function eventJson(row: EventRow) {
  return { ...row, ts: new Date(row.ts).toISOString(), createdAt: new Date(row.createdAt).toISOString() };
}

const MEDIA_TYPES: Readonly<Record<string, string>> = {
  '.jpg': 'image/jpeg',
  '.wav': 'audio/wav',
};

async function notFound(reply: { code(n: number): { send(body: unknown): unknown } }, message: string) {
  return reply.code(404).send({ error: 'not-found', message });
}

async function badRequest(reply: { code(n: number): { send(body: unknown): unknown } }, message: string) {
  return reply.code(400).send({ error: 'bad-request', message });
}
