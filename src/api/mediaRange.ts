import { open } from 'node:fs/promises';
import { extname } from 'node:path';
import type { FastifyReply } from 'fastify';

/** An inclusive byte range of a file. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * The one byte range a `Range` header asks of a file of `size` bytes (RFC 9110 §14.2): `whole` when there is
 * none, or one the server may ignore (not bytes, several ranges, malformed); `unsatisfiable` when it starts
 * past the end (416).
 */
export function parseRange(header: string | undefined, size: number): ByteRange | 'whole' | 'unsatisfiable' {
  if (header === undefined) return 'whole';
  const match = /^bytes=(\d{0,15})-(\d{0,15})$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return 'whole';
  if (match[1] === '') {
    // bytes=-n: the last n bytes
    const n = Number(match[2]);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(match[1]);
  if (match[2] !== '' && Number(match[2]) < start) return 'whole';
  if (start >= size) return 'unsatisfiable';
  return { start, end: match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1) };
}

const MEDIA_TYPES: Readonly<Record<string, string>> = {
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.webp': 'image/webp',
  '.wav': 'audio/wav',
};

/**
 * Streams a stored media file, or the byte range the request asks of it (206; 416 past its end), so an
 * audio element can seek in a clip without the gateway reading it whole. False when the file is gone.
 */
export async function sendMediaFile(
  file: string,
  range: string | undefined,
  reply: FastifyReply,
): Promise<boolean> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch {
    return false;
  }
  let size: number;
  try {
    size = (await handle.stat()).size;
  } catch (error) {
    await handle.close();
    throw error;
  }
  reply.header('accept-ranges', 'bytes');
  const wanted = parseRange(range, size);
  if (wanted === 'unsatisfiable') {
    await handle.close();
    await reply
      .code(416)
      .header('content-range', `bytes */${size}`)
      .send({ error: 'range-not-satisfiable', message: `the file has ${size} bytes` });
    return true;
  }
  reply
    .header('content-type', MEDIA_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream')
    // Media files never change under their name: a new thumbnail or clip gets a new path.
    .header('cache-control', 'private, max-age=86400, immutable');
  const { start, end } = wanted === 'whole' ? { start: 0, end: size - 1 } : wanted;
  if (wanted !== 'whole') reply.code(206).header('content-range', `bytes ${start}-${end}/${size}`);
  reply.header('content-length', String(Math.max(0, end - start + 1)));
  if (size === 0) {
    await handle.close();
    await reply.send('');
    return true;
  }
  // The stream owns the handle from here and closes it when it ends or is destroyed.
  await reply.send(handle.createReadStream({ start, end }));
  return true;
}
