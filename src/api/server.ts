import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import type { Logger } from '../common/index.js';
import type { StoreQueries } from '../store/index.js';
import type { ChangeFeed } from './changes.js';
import { badRequest, notFound, registerDataRoutes } from './dataRoutes.js';
import { addGuards, readTls } from './guards.js';
import { LiveFeed, type LiveFeedOptions, parseStreamId } from './liveFeed.js';
import { METRICS_CONTENT_TYPE } from './metricsRegistry.js';
import { openApiDocument, type RouteRecord, type RouteSchema } from './openapi.js';
import { parseTime } from './params.js';
import { DEFAULT_WEB_ROOT, sendWebFile, WEB_FILE_PATTERN } from './webFiles.js';

/** A question for the local model (POST /api/ask), validated. */
export interface AskQuestion {
  question: string;
  /** epoch ms: only findings about this time or later */
  since?: number | undefined;
  /** epoch ms: only findings about times before this */
  until?: number | undefined;
  /** only findings of these kinds (frame, audio, anomaly, digest) */
  kinds?: string[] | undefined;
}

/** One readiness check: `required` ones decide /readyz's status; the others are there to be seen. */
export interface ReadinessCheck {
  ok: boolean;
  required: boolean;
  [detail: string]: unknown;
}

export interface ApiServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Bearer token for every route but /healthz and the web page's files; absent: none (loopback only). */
  token?: string | undefined;
  queries: StoreQueries;
  /** Absolute path of a stored media file (thumbnails, clips). */
  mediaFile: (path: string) => string;
  /** The gateway's state for /api/status. */
  status: () => Record<string, unknown>;
  /** Readiness checks for /readyz by name; the gateway is ready when every required one is ok. */
  readiness: () => Record<string, ReadinessCheck>;
  /** The event loop's delay over its last window (the daemon's monitor), shown by /healthz when given. */
  eventLoopDelay?: () => { p50: number; p99: number; max: number; windowMs: number };
  logger: Logger;
  now: () => number;
  /** PEM certificate (chain) and private key files for HTTPS, both or neither. Absent: plain HTTP. */
  tls?: { cert: string; key: string } | undefined;
  /** Requests per minute per client address (token bucket, the same burst); 0: no limit. Default 600. */
  rateLimit?: number | undefined;
  /** Browser origins allowed to call the API (CORS). Absent or empty: no CORS headers at all. */
  cors?: readonly string[] | undefined;
  /** Notices that results or events were stored, for /api/stream. Absent: it polls every second only. */
  changes?: ChangeFeed | undefined;
  /**
   * Answers POST /api/ask with a JSON value; the signal aborts when the client goes or the server closes.
   * An error with a numeric `statusCode` (400-599) is answered with that status. Absent: 503.
   */
  ask?: ((question: AskQuestion, signal: AbortSignal) => Promise<unknown>) | undefined;
  /** The Prometheus text exposition (version 0.0.4) for GET /metrics. Absent: 404. */
  metrics?: (() => string | Promise<string>) | undefined;
  /** Folder of the web page (index.html, app.js, style.css). Default: `web/` beside this module. */
  webRoot?: string | undefined;
  /** Tuning of /api/stream (defaults: poll 1 s, heartbeat 15 s, stall 30 s, 32 clients). */
  stream?: Pick<LiveFeedOptions, 'pollMs' | 'heartbeatMs' | 'stallMs' | 'maxClients'> | undefined;
}

export interface ApiServer {
  /** http(s)://host:port */
  readonly url: string;
  close(): Promise<void>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: no bearer token needed */
    auth?: boolean;
    /** false: not counted against the rate limit */
    rateLimit?: boolean;
  }
}

/** How long requests in flight may take to finish when the server closes, ms. */
const CLOSE_GRACE_MS = 1000;

/** Largest request body, bytes: the only body is a question of at most 500 characters. */
const BODY_LIMIT = 16 * 1024;

function createApp(https: { cert: Buffer; key: Buffer } | null) {
  // Fastify's own request logging stays off: a busy LAN dashboard would flood the board's log.
  return Fastify({
    logger: false,
    https,
    bodyLimit: BODY_LIMIT,
    // An unknown query parameter (a typo such as `sinec`) is an error, not silently dropped.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: true } },
  });
}

export type ApiApp = ReturnType<typeof createApp>;

/**
 * The LAN API: health, readiness, status, readings, events, results and their media, the live stream,
 * questions to the model, metrics, its own OpenAPI document and the web page.
 */
export async function startApiServer(options: ApiServerOptions): Promise<ApiServer> {
  const tls = options.tls ? readTls(options.tls) : null;
  const app = createApp(tls);
  const routes: RouteRecord[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      routes.push({
        method,
        url: route.url,
        schema: route.schema as RouteSchema | undefined,
        auth: route.config?.auth !== false,
        rateLimited: route.config?.rateLimit !== false,
      });
    }
  });
  const feed = new LiveFeed({
    queries: options.queries,
    changes: options.changes,
    logger: options.logger,
    ...options.stream,
  });
  const closing = new AbortController();

  addGuards(app, options);
  app.setErrorHandler(async (error: { statusCode?: number; message: string }, _request, reply) => {
    const status = error.statusCode && error.statusCode < 500 ? error.statusCode : 500;
    if (status === 500) options.logger.error({ err: error }, 'API request failed');
    await reply
      .code(status)
      .send({ error: status === 500 ? 'internal' : 'bad-request', message: error.message });
  });
  app.setNotFoundHandler(async (request, reply) =>
    notFound(reply, `no route ${request.method} ${request.url.split('?')[0]!.slice(0, 100)}`),
  );
  app.addHook('preClose', async () => {
    closing.abort();
    feed.close();
  });

  app.get(
    '/healthz',
    { schema: { summary: 'Liveness: the process answers' }, config: { auth: false, rateLimit: false } },
    // Answering at all is the proof of a responsive loop: a stuck one leaves the probe to time out.
    async () => ({
      status: 'ok',
      uptimeSeconds: Math.round(process.uptime()),
      ...(options.eventLoopDelay && { eventLoopDelayMs: options.eventLoopDelay() }),
    }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: store and broker (required); model, disk and uplink (reported)',
        errors: { 503: 'not ready: a required check failed' },
      },
    },
    async (_request, reply) => {
      const checks = options.readiness();
      const ready = Object.values(checks).every((check) => check.ok || !check.required);
      await reply.code(ready ? 200 : 503).send({ ready, checks });
    },
  );

  app.get('/api/status', { schema: { summary: "The gateway's state" } }, async () => options.status());

  registerDataRoutes(app, options);

  app.get(
    '/api/stream',
    {
      schema: {
        summary: 'Server-sent events: `result` and `event` as they are stored',
        description:
          'Each message id is `r<result>.e<event>`; reconnect with Last-Event-ID to resume without gaps or ' +
          'repeats. Without it the stream starts now, or with the first rows stored at `since`.',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            since: {
              type: 'string',
              maxLength: 40,
              description: 'replay rows stored since: ISO 8601 or epoch ms',
            },
          },
        },
        headers: {
          type: 'object',
          properties: {
            'last-event-id': { type: 'string', maxLength: 40, description: 'the last message id received' },
          },
        },
        produces: ['text/event-stream'],
        errors: { 503: 'too many streams open' },
      },
    },
    async (request, reply) => {
      const { since } = request.query as { since?: string };
      const lastId = request.headers['last-event-id'] as string | undefined;
      const heads = options.queries.streamCursors();
      let cursors = heads;
      if (lastId !== undefined && lastId !== '') {
        const resume = parseStreamId(lastId);
        if (!resume) return badRequest(reply, 'last-event-id: expected r<number>.e<number>');
        // A cursor past the newest row (a store that was replaced) would wait forever: it starts now instead.
        cursors = {
          result: Math.min(resume.result, heads.result),
          event: Math.min(resume.event, heads.event),
        };
      } else if (since !== undefined) {
        const from = parseTime(since);
        if (from === undefined) return badRequest(reply, 'since: expected ISO 8601 or epoch milliseconds');
        cursors = options.queries.streamCursors(from);
      }
      reply.hijack();
      // Hijacked: the headers the guards set (CORS) are written here, not by fastify.
      const headers = Object.fromEntries(
        Object.entries(reply.getHeaders()).map(([name, value]) => [
          name,
          typeof value === 'number' ? String(value) : value,
        ]),
      );
      if (!feed.attach(reply.raw, cursors, headers)) {
        reply.raw.writeHead(503, { ...headers, 'content-type': 'application/json; charset=utf-8' });
        reply.raw.end(JSON.stringify({ error: 'unavailable', message: 'too many live streams open' }));
      }
    },
  );

  app.post(
    '/api/ask',
    {
      schema: {
        summary: 'A question answered by the local model from stored findings',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['question'],
          properties: {
            question: { type: 'string', minLength: 1, maxLength: 500 },
            since: {
              type: 'string',
              maxLength: 40,
              description: 'findings at or after: ISO 8601 or epoch ms',
            },
            until: { type: 'string', maxLength: 40, description: 'findings before: ISO 8601 or epoch ms' },
            kinds: {
              type: 'array',
              maxItems: 8,
              items: { type: 'string', minLength: 1, maxLength: 32 },
              description: 'only findings of these kinds (frame, audio, anomaly, digest)',
            },
          },
        },
        errors: { 503: 'no model (inference is off) or it is not available', 504: 'no answer in time' },
      },
    },
    async (request, reply) => {
      const body = request.body as { question: string; since?: string; until?: string; kinds?: string[] };
      if (!options.ask) {
        return reply
          .code(503)
          .send({ error: 'unavailable', message: 'questions need the local model; inference is off' });
      }
      const since = body.since === undefined ? undefined : parseTime(body.since);
      const until = body.until === undefined ? undefined : parseTime(body.until);
      if (body.since !== undefined && since === undefined)
        return badRequest(reply, 'since: expected ISO 8601 or epoch milliseconds');
      if (body.until !== undefined && until === undefined)
        return badRequest(reply, 'until: expected ISO 8601 or epoch milliseconds');
      const gone = new AbortController();
      reply.raw.on('close', () => {
        if (!reply.raw.writableFinished) gone.abort();
      });
      try {
        return await options.ask(
          { question: body.question, since, until, kinds: body.kinds },
          AbortSignal.any([gone.signal, closing.signal]),
        );
      } catch (error) {
        const status = (error as { statusCode?: unknown }).statusCode;
        if (typeof status === 'number' && status >= 400 && status < 600) {
          return reply
            .code(status)
            .send({ error: ASK_ERRORS[status] ?? 'failed', message: (error as Error).message });
        }
        if (closing.signal.aborted) {
          return reply.code(503).send({ error: 'unavailable', message: 'the gateway is stopping' });
        }
        throw error;
      }
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format 0.0.4)',
        produces: ['text/plain; version=0.0.4'],
        errors: { 404: 'no metrics in this gateway' },
      },
    },
    async (_request, reply) => {
      if (!options.metrics) return notFound(reply, 'no metrics in this gateway');
      const text = await options.metrics();
      return reply.header('content-type', METRICS_CONTENT_TYPE).send(text);
    },
  );

  let document: unknown;
  app.get('/api/openapi.json', { schema: { summary: 'This document' } }, async () => {
    document ??= openApiDocument(routes, {
      title: 'Outpost LAN API',
      version: packageVersion(),
      bearer: Boolean(options.token),
      rateLimited: (options.rateLimit ?? 600) > 0,
    });
    return document;
  });

  // The page's files hold no data and no secret, and a browser cannot send a header when it navigates: they
  // are public, and the page asks for the token when the API answers 401 (DESIGN.md says "everything but
  // /healthz"; this is the one exception it needs to work at all).
  const webRoot = options.webRoot ?? DEFAULT_WEB_ROOT;
  app.get(
    '/',
    { schema: { summary: 'The web page', produces: ['text/html'] }, config: { auth: false } },
    async (request, reply) => sendWebFile(webRoot, 'index.html', request, reply),
  );
  app.get(
    '/:file',
    {
      schema: {
        summary: "The web page's scripts and styles",
        params: {
          type: 'object',
          required: ['file'],
          properties: { file: { type: 'string', pattern: WEB_FILE_PATTERN } },
        },
        produces: ['text/javascript', 'text/css'],
        errors: { 404: 'no such file' },
      },
      config: { auth: false },
    },
    async (request, reply) => sendWebFile(webRoot, (request.params as { file: string }).file, request, reply),
  );

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    feed.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closed = false;
  return {
    url: `${tls ? 'https' : 'http'}://${host}:${port}`,
    async close() {
      if (closed) return;
      closed = true;
      // Requests in flight get a moment to finish (streams end and questions are aborted at once); a
      // socket that never sends a request (a browser's speculative connection) must not hold the close.
      const force = setTimeout(() => app.server.closeAllConnections(), CLOSE_GRACE_MS);
      try {
        await app.close();
      } finally {
        clearTimeout(force);
      }
    },
  };
}

const ASK_ERRORS: Readonly<Record<number, string>> = {
  400: 'bad-request',
  409: 'conflict',
  429: 'busy',
  502: 'model-failed',
  503: 'unavailable',
  504: 'timeout',
};

let version: string | undefined;
/** Outpost's version, from package.json two folders up (from src/api and from dist/api alike). */
function packageVersion(): string {
  if (version === undefined) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version?: string;
      };
      version = pkg.version ?? '0.0.0';
    } catch {
      version = '0.0.0';
    }
  }
  return version;
}
