import { open } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';

/**
 * The web page's folder. Next to this module in both layouts: `src/api/web` when run from source, and
 * `dist/api/web` in a build (the `build` script copies it, since tsc copies only what it compiles).
 */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('./web/', import.meta.url));

/** A file name directly in the web folder: no slash, no leading dot, so nothing outside it is reachable. */
export const WEB_FILE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$';

const WEB_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.txt': 'text/plain; charset=utf-8',
};

/** Largest web file served, bytes: the page is a few small files. */
const MAX_WEB_FILE = 4 * 1024 * 1024;

/**
 * Sends `name` from the web folder, or 404. The files are not fingerprinted, so browsers revalidate each
 * load (`no-cache`) and an unchanged file costs a 304 (its ETag is its size and modification time).
 */
export async function sendWebFile(
  root: string,
  name: string,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<void> {
  const type = WEB_TYPES[extname(name).toLowerCase()];
  const base = resolve(root);
  const file = resolve(base, name);
  if (!type || !new RegExp(WEB_FILE_PATTERN).test(name) || !file.startsWith(base + sep)) {
    return notFound(reply);
  }
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(join(base, name), 'r');
  } catch {
    return notFound(reply);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile() || stat.size > MAX_WEB_FILE) return notFound(reply);
    const etag = `W/"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
    reply
      .header('content-type', type)
      .header('cache-control', 'no-cache')
      .header('etag', etag)
      .header('last-modified', stat.mtime.toUTCString())
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('x-frame-options', 'DENY');
    if (request.headers['if-none-match'] === etag) {
      await reply.code(304).send();
      return;
    }
    await reply.send(await handle.readFile());
  } finally {
    await handle.close();
  }
}

async function notFound(reply: FastifyReply) {
  await reply.code(404).send({ error: 'not-found', message: 'no such file' });
}
