/**
 * `outpost model pull` and the daemon's provisioning: downloads a catalog entry's files with resume, retries
 * and verification (size, sha256). The HTTP side of one transfer is in pullTransfer.ts.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CatalogEntry, CatalogFile } from './catalog.js';
import { describeError, ModelPullError } from './errors.js';
import { sizeOf } from './modelFiles.js';
import {
  BrokenTransfer,
  cancel,
  lengthOf,
  type PartHash,
  parseContentRange,
  receive,
  request,
} from './pullTransfer.js';

/** One progress report of a file being downloaded. */
export interface PullProgress {
  /** file name in the model directory */
  file: string;
  /** bytes of the file on disk so far, including what an earlier, interrupted pull left */
  receivedBytes: number;
  /** the whole file's size in bytes, when the catalog or the server says it */
  totalBytes: number | undefined;
  /** average speed of this transfer so far, bytes per second (0 until there is something to measure) */
  bytesPerSecond: number;
}

export interface PullOptions {
  /** directory the files go into; created when missing */
  dir: string;
  /** aborts the download: the promise rejects with the signal's reason and the `.part` file stays for a later pull */
  signal?: AbortSignal | undefined;
  /** progress of the file being downloaded: at the start of each request, at most every `progressIntervalMs`, and at the end */
  onProgress?: ((p: PullProgress) => void) | undefined;
  /** the fetch to use; default: the global fetch */
  fetchImpl?: typeof fetch | undefined;
  /** replaces the origin of the catalog URLs (scheme, host, port; a path here is prefixed), e.g. a LAN mirror; default: none */
  baseUrl?: string | undefined;
  /** how many times a transfer that broke off midway is resumed within this call before giving up; default 3 */
  retries?: number | undefined;
  /** wait before the first resume after a break, ms, doubled for each further one; default 1000 */
  retryDelayMs?: number | undefined;
  /** no response headers, or no data, for this long: the host counts as unreachable (or the transfer as broken), ms; default 60000 */
  stallTimeoutMs?: number | undefined;
  /** least time between two progress reports of one file, ms; default 250 */
  progressIntervalMs?: number | undefined;
}

/** What happened to one file of a pull. */
export interface PulledFile {
  /** file name in the model directory */
  file: string;
  /** absolute path of the complete file */
  path: string;
  /** 'present': was already complete (nothing fetched); 'resumed': a `.part` was continued; 'downloaded': fetched whole */
  status: 'present' | 'downloaded' | 'resumed';
  /** bytes fetched over the network in this call */
  transferredBytes: number;
}

export interface PullResult {
  /** absolute path of the model GGUF */
  modelPath: string;
  /** absolute path of the projector GGUF, when the entry has one */
  mmprojPath?: string;
  /** the model first, then the projector */
  files: PulledFile[];
}

/**
 * Downloads `entry`'s model (and projector) into `options.dir`. Each file goes to `<file>.part` first, resumes
 * with an HTTP Range request when a `.part` is there (a server that ignores Range restarts it from zero), is
 * checked against the catalog's size and sha256 where known, and is renamed into place only when complete.
 * A file already complete (right size and hash) is not downloaded again.
 * @throws ModelPullError (offline, HTTP status, broken transfer, checksum, size, disk); the signal's reason on abort
 */
export async function pullModel(entry: CatalogEntry, options: PullOptions): Promise<PullResult> {
  const dir = resolve(options.dir);
  const files: PulledFile[] = [await pullFile(entry.model, dir, options)];
  if (entry.mmproj) files.push(await pullFile(entry.mmproj, dir, options));
  const [model, mmproj] = files;
  return { modelPath: model!.path, ...(mmproj ? { mmprojPath: mmproj.path } : {}), files };
}

async function pullFile(file: CatalogFile, dir: string, options: PullOptions): Promise<PulledFile> {
  const signal = options.signal;
  signal?.throwIfAborted();
  const path = join(dir, file.fileName);
  const part = `${path}.part`;
  const url = sourceUrl(file.url, options.baseUrl);
  const host = new URL(url).host;
  const diskFailure = (detail: string): ModelPullError =>
    new ModelPullError({ kind: 'disk', file: file.fileName, dir, detail });

  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw diskFailure(describeError(error));
  }
  if (await isComplete(path, file, signal)) {
    return { file: file.fileName, path, status: 'present', transferredBytes: 0 };
  }

  const retries = options.retries ?? 3;
  const retryDelayMs = options.retryDelayMs ?? 1000;
  let breaks = 0;
  let transferred = 0;
  let resumed = false;
  let partHash: PartHash | undefined;
  let total: number | undefined = file.sizeBytes;
  let restartedAfter416 = false;

  for (;;) {
    let offset = await sizeOf(part);
    if (file.sizeBytes !== undefined && offset > file.sizeBytes) {
      await rm(part, { force: true });
      offset = 0;
    }
    if (total !== undefined && offset === total) break; // a complete .part from an earlier pull: verify it
    await ensureSpace(dir, total === undefined ? undefined : total - offset, diskFailure);
    if (file.sha256 !== undefined && partHash?.bytes !== offset) {
      // Hash what is already there before asking: hashing gigabytes takes a while and the request would stall.
      partHash = { hash: createHash('sha256'), bytes: 0 };
      await hashFile(part, offset, partHash, signal);
    }

    const attempt = await request(url, offset, file.fileName, options);
    const { response } = attempt;
    try {
      if (response.status === 416 && offset > 0 && !restartedAfter416) {
        await cancel(response);
        // `bytes */N` with N the .part's size: the .part is already the whole file.
        const whole = /^bytes\s+\*\/(\d+)$/i.exec(response.headers.get('content-range')?.trim() ?? '');
        if (whole && Number(whole[1]) === offset && file.sizeBytes === undefined) {
          total = offset;
          break;
        }
        // Otherwise the range is past the end: the .part does not belong to this file. Start over once.
        restartedAfter416 = true;
        await rm(part, { force: true });
        partHash = undefined;
        continue;
      }
      if (response.status !== 200 && response.status !== 206) {
        await cancel(response);
        throw new ModelPullError({ kind: 'http', host, file: file.fileName, url, status: response.status });
      }
      let start = offset;
      if (response.status === 206) {
        const range = parseContentRange(response.headers.get('content-range'));
        if (range?.start !== offset) {
          // A 206 for another range than asked: do not splice it in; start over without Range.
          await cancel(response);
          await rm(part, { force: true });
          partHash = undefined;
          continue;
        }
        total = range.total ?? lengthOf(response, offset) ?? total;
        resumed = true;
      } else {
        start = 0; // 200: the server ignored Range (or there was none): the body is the whole file
        total = lengthOf(response, 0) ?? total;
      }
      if (file.sizeBytes !== undefined && total !== undefined && total !== file.sizeBytes) {
        await cancel(response);
        await rm(part, { force: true });
        throw new ModelPullError({
          kind: 'size',
          file: file.fileName,
          expected: file.sizeBytes,
          actual: total,
        });
      }
      if (file.sha256 !== undefined && start === 0) partHash = { hash: createHash('sha256'), bytes: 0 };

      await receive(attempt, {
        part,
        start,
        file: file.fileName,
        total,
        partHash,
        options,
        diskFailure,
        counted: (n) => {
          transferred += n;
        },
      });
      const size = await sizeOf(part);
      if (total === undefined || size >= total) break;
      throw new BrokenTransfer(`connection closed at ${size} of ${total} bytes`);
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (!(error instanceof BrokenTransfer)) throw error;
      breaks += 1;
      if (breaks > retries) {
        throw new ModelPullError({
          kind: 'interrupted',
          host,
          file: file.fileName,
          receivedBytes: await sizeOf(part),
          detail: error.detail,
        });
      }
      try {
        await sleep(retryDelayMs * 2 ** (breaks - 1), undefined, signal ? { signal } : {});
      } catch (error) {
        throw signal?.aborted ? signal.reason : error;
      }
    } finally {
      attempt.done();
    }
  }

  await verify(part, file, total, partHash, signal);
  try {
    await rename(part, path);
  } catch (error) {
    throw diskFailure(describeError(error));
  }
  return {
    file: file.fileName,
    path,
    status: resumed ? 'resumed' : 'downloaded',
    transferredBytes: transferred,
  };
}

/** The catalog URL with its origin replaced by `baseUrl`, when given. */
export function sourceUrl(url: string, baseUrl: string | undefined): string {
  if (baseUrl === undefined) return url;
  const u = new URL(url);
  return `${baseUrl.replace(/\/+$/, '')}${u.pathname}${u.search}`;
}

/** Checks size and sha256 of the finished .part; removes it and throws when either is wrong. */
async function verify(
  part: string,
  file: CatalogFile,
  total: number | undefined,
  partHash: PartHash | undefined,
  signal: AbortSignal | undefined,
): Promise<void> {
  const size = await sizeOf(part);
  const expectedSize = file.sizeBytes ?? total;
  if (expectedSize !== undefined && size !== expectedSize) {
    await rm(part, { force: true });
    throw new ModelPullError({ kind: 'size', file: file.fileName, expected: expectedSize, actual: size });
  }
  if (file.sha256 === undefined) return;
  let hashed = partHash;
  if (hashed?.bytes !== size) {
    hashed = { hash: createHash('sha256'), bytes: 0 };
    await hashFile(part, size, hashed, signal);
  }
  const actual = hashed.hash.digest('hex');
  if (actual !== file.sha256.toLowerCase()) {
    await rm(part, { force: true });
    throw new ModelPullError({ kind: 'checksum', file: file.fileName, expected: file.sha256, actual });
  }
}

/** Whether `path` is already the catalog file: exists, and has the right size and hash where those are known. */
async function isComplete(
  path: string,
  file: CatalogFile,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const size = await sizeOf(path, -1);
  if (size < 0) return false;
  if (file.sizeBytes !== undefined && size !== file.sizeBytes) return false;
  if (file.sha256 === undefined) return true;
  const hashed: PartHash = { hash: createHash('sha256'), bytes: 0 };
  await hashFile(path, size, hashed, signal);
  return hashed.hash.digest('hex') === file.sha256.toLowerCase();
}

/** Feeds the first `length` bytes of `path` into `into`. */
async function hashFile(path: string, length: number, into: PartHash, signal: AbortSignal | undefined) {
  if (length <= 0) return;
  const stream = createReadStream(path, { start: 0, end: length - 1, ...(signal ? { signal } : {}) });
  try {
    for await (const chunk of stream) {
      into.hash.update(chunk as Buffer);
      into.bytes += (chunk as Buffer).byteLength;
    }
  } catch (error) {
    throw signal?.aborted ? signal.reason : error;
  }
}

/** Refuses early when the file system lacks room for `needed` bytes (when both are known). */
async function ensureSpace(
  dir: string,
  needed: number | undefined,
  diskFailure: (detail: string) => ModelPullError,
): Promise<void> {
  if (needed === undefined || needed <= 0) return;
  let free: number;
  try {
    const fs = await statfs(dir);
    free = fs.bavail * fs.bsize;
  } catch {
    return; // no statfs here: the write itself will tell
  }
  if (free < needed) throw diskFailure(`needs ${needed} bytes, ${free} free`);
}
