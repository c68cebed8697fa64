import { timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createSecureContext } from 'node:tls';
import type { FastifyReply } from 'fastify';
import { ApiTlsError } from './errors.js';
import { RateLimiter } from './rateLimiter.js';
import type { ApiApp, ApiServerOptions } from './server.js';

type GuardOptions = Pick<ApiServerOptions, 'cors' | 'rateLimit' | 'token'>;

/** CORS, rate limit and bearer token, in that order, before routing's handlers run. */
export function addGuards(app: ApiApp, options: GuardOptions): void {
  const origins = new Set(options.cors ?? []);
  const perMinute = options.rateLimit ?? 600;
  const limiter = perMinute > 0 ? new RateLimiter({ perMinute, now: () => performance.now() }) : undefined;
  const expected = options.token ? Buffer.from(`Bearer ${options.token}`) : undefined;

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-content-type-options', 'nosniff');
    if (origins.size > 0) {
      reply.header('vary', 'origin');
      const origin = request.headers.origin;
      const allowed = origin !== undefined && origins.has(origin);
      if (allowed) {
        reply
          .header('access-control-allow-origin', origin)
          .header(
            'access-control-expose-headers',
            'content-range, accept-ranges, content-length, retry-after',
          );
      }
      // A preflight carries no token; it is answered here, for every path.
      if (request.method === 'OPTIONS' && request.headers['access-control-request-method']) {
        if (allowed) {
          reply
            .header('access-control-allow-methods', 'GET, POST')
            .header('access-control-allow-headers', 'authorization, content-type, last-event-id, range')
            .header('access-control-max-age', '600');
        }
        return reply.code(204).send();
      }
    }
    const config = request.routeOptions.config;
    if (limiter && config.rateLimit !== false) {
      const decision = limiter.take(request.ip);
      if (!decision.ok) {
        return tooMany(reply, decision.retryAfterSeconds);
      }
    }
    if (expected && config.auth !== false) {
      const given = Buffer.from(request.headers.authorization ?? '');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        return unauthorized(reply);
      }
    }
  });
}

async function tooMany(reply: FastifyReply, seconds: number) {
  return reply
    .code(429)
    .header('retry-after', String(seconds))
    .send({ error: 'rate-limited', message: `too many requests; retry in ${seconds} s` });
}

async function unauthorized(reply: FastifyReply) {
  return reply
    .code(401)
    .header('www-authenticate', 'Bearer')
    .send({ error: 'unauthorized', message: 'a valid bearer token is required' });
}

/** Reads and checks the HTTPS files now, so a bad path or pair fails the start with the key to fix. */
export function readTls(files: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  const read = (key: 'cert' | 'key') => {
    try {
      return readFileSync(files[key]);
    } catch (error) {
      throw new ApiTlsError(`http.tls.${key}`, `cannot read ${files[key]}: ${(error as Error).message}`);
    }
  };
  const pair = { cert: read('cert'), key: read('key') };
  try {
    createSecureContext(pair);
  } catch (error) {
    throw new ApiTlsError(
      'http.tls',
      `the certificate and key are not a PEM certificate and its private key: ${(error as Error).message}`,
    );
  }
  return pair;
}
