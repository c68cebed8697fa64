/**
 * One HTTP transfer of a model pull: the GET with its stall timer, streaming the body into the `.part` file
 * (hashing and reporting progress on the way), and the small header and error helpers around them.
 */
import type { Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { describeError, ModelPullError } from './errors.js';
import type { PullOptions } from './modelPull.js';

/** A transfer that stopped early and may be resumed; carries what the failure message needs. */
export class BrokenTransfer extends Error {
  constructor(readonly detail: string) {
    super(detail);
  }
}

/** Running sha256 of the bytes in a `.part` file, so a resume does not re-read what is already hashed. */
export interface PartHash {
  hash: Hash;
  bytes: number;
}

/** A response being received, with the stall timer that guards it. */
export interface PullTransfer {
  response: Response;
  /** the stall timer: refreshed on every chunk, aborts the request when it fires */
  poke: () => void;
  /** true once the stall timer fired */
  stalled: () => boolean;
  /** clears the stall timer */
  done: () => void;
}

/** One GET with a stall timer; connection-level failures become the offline error. */
export async function request(
  url: string,
  offset: number,
  file: string,
  options: PullOptions,
): Promise<PullTransfer> {
  const stallMs = options.stallTimeoutMs ?? 60_000;
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(new Error(`no answer for ${stallMs} ms`)), stallMs);
  const done = () => clearTimeout(timer);
  const signals = options.signal ? [options.signal, timeout.signal] : [timeout.signal];
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (offset > 0) headers.range = `bytes=${offset}-`;
  try {
    const response = await (options.fetchImpl ?? fetch)(url, {
      headers,
      redirect: 'follow',
      signal: AbortSignal.any(signals),
    });
    return { response, poke: () => timer.refresh(), stalled: () => timeout.signal.aborted, done };
  } catch (error) {
    done();
    if (options.signal?.aborted) throw options.signal.reason;
    throw new ModelPullError({
      kind: 'offline',
      host: new URL(url).host,
      file,
      dir: resolve(options.dir),
      detail: timeout.signal.aborted ? `no answer within ${stallMs} ms` : networkDetail(error),
    });
  }
}

export interface ReceiveTarget {
  part: string;
  /** where in the file the body starts: 0 truncates the .part, else the body is appended */
  start: number;
  file: string;
  total: number | undefined;
  partHash: PartHash | undefined;
  options: PullOptions;
  diskFailure: (detail: string) => ModelPullError;
  /** told of every chunk written, bytes */
  counted: (bytes: number) => void;
}

/** Streams the body into the .part. A body that breaks off throws BrokenTransfer. */
export async function receive(attempt: PullTransfer, target: ReceiveTarget): Promise<void> {
  const { options, partHash } = target;
  const body = attempt.response.body;
  if (!body) throw new BrokenTransfer('empty response');
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(target.part, target.start === 0 ? 'w' : 'a');
  } catch (error) {
    await cancel(attempt.response);
    throw target.diskFailure(describeError(error));
  }
  const interval = options.progressIntervalMs ?? 250;
  const began = performance.now();
  let received = 0;
  let lastReport = Number.NEGATIVE_INFINITY;
  const report = (force: boolean) => {
    const now = performance.now();
    if (!options.onProgress || (!force && now - lastReport < interval)) return;
    lastReport = now;
    const seconds = (now - began) / 1000;
    options.onProgress({
      file: target.file,
      receivedBytes: target.start + received,
      totalBytes: target.total,
      bytesPerSecond: seconds > 0 ? received / seconds : 0,
    });
  };
  report(true);
  const reader = body.getReader();
  try {
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        throw new BrokenTransfer(attempt.stalled() ? 'no data for a while' : networkDetail(error));
      }
      if (chunk.done) break;
      attempt.poke();
      try {
        await handle.write(chunk.value);
      } catch (error) {
        throw target.diskFailure(describeError(error));
      }
      partHash?.hash.update(chunk.value);
      if (partHash) partHash.bytes += chunk.value.byteLength;
      received += chunk.value.byteLength;
      target.counted(chunk.value.byteLength);
      report(false);
    }
  } finally {
    reader.releaseLock();
    await cancel(attempt.response);
    await handle.close();
  }
  report(true);
}

export async function cancel(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // already consumed, locked or broken: nothing to free
  }
}

export function lengthOf(response: Response, offset: number): number | undefined {
  const text = response.headers.get('content-length');
  if (text === null || !/^\d+$/.test(text)) return undefined;
  return offset + Number(text);
}

export function parseContentRange(
  value: string | null,
): { start: number; total: number | undefined } | undefined {
  const m = value ? /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(value.trim()) : null;
  if (!m) return undefined;
  return { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/** The system error code of a fetch failure (undici nests it in `cause`, or in an AggregateError), else its message. */
function networkDetail(error: unknown): string {
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current; depth++) {
    if (typeof current !== 'object') break;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    if (current instanceof AggregateError && current.errors.length > 0) {
      current = current.errors[0];
      continue;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return describeError(error);
}
