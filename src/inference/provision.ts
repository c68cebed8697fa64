/**
 * Getting model files onto the gateway and looking at them: download with resume and verification,
 * name-or-path resolution, a listing of what is local, and a GGUF summary.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, statfs } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  APPROX_RAM_CONTEXT,
  CATALOG,
  type CatalogEntry,
  type CatalogFile,
  findCatalogEntry,
} from './catalog.js';
import { ModelFileError, ModelPullError } from './errors.js';

// ---------------------------------------------------------------------------------------------------------
// pull

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

/** A transfer that stopped early and may be resumed; carries what the failure message needs. */
class BrokenTransfer extends Error {
  constructor(readonly detail: string) {
    super(detail);
  }
}

/** Running sha256 of the bytes in a `.part` file, so a resume does not re-read what is already hashed. */
interface PartHash {
  hash: Hash;
  bytes: number;
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
    throw diskFailure(describe(error));
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
    throw diskFailure(describe(error));
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

interface Attempt {
  response: Response;
  /** the stall timer: refreshed on every chunk, aborts the request when it fires */
  poke: () => void;
  /** true once the stall timer fired */
  stalled: () => boolean;
  /** clears the stall timer */
  done: () => void;
}

/** One GET with a stall timer; connection-level failures become the offline error. */
async function request(url: string, offset: number, file: string, options: PullOptions): Promise<Attempt> {
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

interface ReceiveTarget {
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
async function receive(attempt: Attempt, target: ReceiveTarget): Promise<void> {
  const { options, partHash } = target;
  const body = attempt.response.body;
  if (!body) throw new BrokenTransfer('empty response');
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(target.part, target.start === 0 ? 'w' : 'a');
  } catch (error) {
    await cancel(attempt.response);
    throw target.diskFailure(describe(error));
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
        throw target.diskFailure(describe(error));
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

async function sizeOf(path: string, missing = 0): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return missing;
  }
}

async function cancel(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // already consumed, locked or broken: nothing to free
  }
}

function lengthOf(response: Response, offset: number): number | undefined {
  const text = response.headers.get('content-length');
  if (text === null || !/^\d+$/.test(text)) return undefined;
  return offset + Number(text);
}

function parseContentRange(value: string | null): { start: number; total: number | undefined } | undefined {
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
  return describe(error);
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

// ---------------------------------------------------------------------------------------------------------
// resolve and list

export type ResolvedModel =
  | { kind: 'path'; path: string }
  | { kind: 'catalog'; entry: CatalogEntry; path: string; present: boolean }
  | { kind: 'unknown' };

/** Whether `nameOrPath` names a file (ends with .gguf or contains a path separator) rather than a catalog entry. */
export function isModelPath(nameOrPath: string): boolean {
  return /\.gguf$/i.test(nameOrPath) || nameOrPath.includes('/') || nameOrPath.includes('\\');
}

/**
 * What `nameOrPath` (a `model.name` / OUTPOST_MODEL value) refers to: a file path, a catalog entry (with where
 * its file goes in `dir` and whether it is there complete, judged by size), or nothing known.
 */
export function resolveModel(nameOrPath: string, dir: string): ResolvedModel {
  if (isModelPath(nameOrPath)) return { kind: 'path', path: resolve(nameOrPath) };
  const entry = findCatalogEntry(nameOrPath);
  if (!entry) return { kind: 'unknown' };
  const path = resolve(dir, entry.model.fileName);
  return { kind: 'catalog', entry, path, present: fileMatches(path, entry.model) };
}

function fileMatches(path: string, file: CatalogFile): boolean {
  try {
    const s = statSync(path);
    return s.isFile() && (file.sizeBytes === undefined || s.size === file.sizeBytes);
  } catch {
    return false;
  }
}

/** One row of `outpost model list`. */
export interface ModelRow {
  /** catalog name, or the file name for a GGUF found in the directory that is not in the catalog */
  name: string;
  /** 'catalog': a catalog entry (local or not); 'local': a GGUF in the directory the catalog does not know */
  source: 'catalog' | 'local';
  /** the model file is in the directory, complete (for catalog entries: with the catalog's size) */
  present: boolean;
  /** the projector is there too (catalog entries with a projector only) */
  mmprojPresent?: boolean;
  /** bytes of an unfinished download (`.part`), when there is one */
  partialBytes?: number;
  /** model file size in bytes: the local file's, else the catalog's; undefined when unknown */
  sizeBytes: number | undefined;
  /** resident RAM estimate at the requested context without GPU, bytes; undefined when unknown */
  estimatedRamBytes: number | undefined;
  /** where the model file is, or would be */
  path: string;
  /** inputs the model takes (catalog entries only) */
  modalities?: ('text' | 'image' | 'audio')[];
}

export interface ListOptions {
  /** context size the RAM estimate is for, tokens */
  contextSize: number;
  /** RAM estimate of a local GGUF at `contextSize` (e.g. `ggufRamEstimate`), bytes; undefined when it cannot tell */
  estimate?: ((path: string) => Promise<number | undefined>) | undefined;
}

/** Default KV-cache bytes per token for scaling when an entry does not state its own. */
const DEFAULT_KV_BYTES_PER_TOKEN = 16 * 1024;

/** `approxRamBytes` (stated at 4k context) moved to `contextSize` by the entry's KV-cache bytes per token. */
export function scaledRamEstimate(entry: CatalogEntry, contextSize: number): number {
  const perToken = entry.kvBytesPerToken ?? DEFAULT_KV_BYTES_PER_TOKEN;
  return Math.max(0, entry.approxRamBytes + (contextSize - APPROX_RAM_CONTEXT) * perToken);
}

/** The catalog, marked with what is in `dir`, followed by any other *.gguf found there. */
export async function listModels(dir: string, options: ListOptions): Promise<ModelRow[]> {
  const root = resolve(dir);
  let names: string[] = [];
  try {
    names = (await readdir(root, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name);
  } catch {
    // no directory yet: nothing is local
  }
  const local = new Set(names);
  const known = new Set<string>();
  const rows: ModelRow[] = [];

  for (const entry of CATALOG) {
    known.add(entry.model.fileName);
    if (entry.mmproj) known.add(entry.mmproj.fileName);
    const path = join(root, entry.model.fileName);
    const present = local.has(entry.model.fileName) && fileMatches(path, entry.model);
    const localSize = present ? await sizeOf(path) : undefined;
    const partial = local.has(`${entry.model.fileName}.part`) ? await sizeOf(`${path}.part`) : undefined;
    const mmprojPath = entry.mmproj ? join(root, entry.mmproj.fileName) : undefined;
    const mmprojPresent = entry.mmproj && mmprojPath ? fileMatches(mmprojPath, entry.mmproj) : undefined;
    let estimated = scaledRamEstimate(entry, options.contextSize);
    if (present && options.estimate) {
      const fromFile = await options.estimate(path);
      if (fromFile !== undefined) {
        const projector =
          mmprojPresent && mmprojPath ? await sizeOf(mmprojPath) : (entry.mmproj?.sizeBytes ?? 0);
        estimated = fromFile + projector;
      }
    }
    rows.push({
      name: entry.name,
      source: 'catalog',
      present,
      ...(mmprojPresent !== undefined ? { mmprojPresent } : {}),
      ...(partial !== undefined ? { partialBytes: partial } : {}),
      sizeBytes: localSize ?? entry.model.sizeBytes,
      estimatedRamBytes: estimated,
      path,
      modalities: [...entry.modalities],
    });
  }

  for (const name of [...local].filter((n) => /\.gguf$/i.test(n) && !known.has(n)).sort()) {
    const path = join(root, name);
    rows.push({
      name,
      source: 'local',
      present: true,
      sizeBytes: await sizeOf(path),
      estimatedRamBytes: options.estimate ? await options.estimate(path) : undefined,
      path,
    });
  }
  return rows;
}

/**
 * RAM a local GGUF needs at `contextSize` on the CPU (weights + context), from node-llama-cpp's estimator;
 * undefined when the file cannot be read or the estimator is unavailable.
 */
export async function ggufRamEstimate(path: string, contextSize: number): Promise<number | undefined> {
  try {
    const { readGgufFileInfo, GgufInsights } = await llamaCpp();
    const info = await readGgufFileInfo(path, { sourceType: 'filesystem', logWarnings: false });
    const insights = await GgufInsights.from(info);
    const model = insights.estimateModelResourceRequirements({ gpuLayers: 0 }).cpuRam;
    const context = insights.estimateContextResourceRequirements({ contextSize, modelGpuLayers: 0 }).cpuRam;
    return Math.round(model + context);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------
// inspect

/** What `outpost model inspect` shows of a GGUF file. */
export interface GgufSummary {
  /** absolute path */
  path: string;
  /** file size, bytes */
  fileSizeBytes: number;
  /** GGUF format version */
  ggufVersion: number;
  /** `general.architecture`, e.g. 'gemma3n', 'gemma4', or 'clip' for a projector */
  architecture: string;
  /** `general.name` */
  name?: string;
  /** `general.size_label`, e.g. '4.5B' */
  sizeLabel?: string;
  /** quantization named from `general.file_type`, e.g. 'Q4_K_M' */
  fileType?: string;
  /** raw `general.file_type` */
  fileTypeId?: number;
  /** `<arch>.context_length`, tokens */
  contextLength?: number;
  /** `<arch>.embedding_length` */
  embeddingLength?: number;
  /** `<arch>.block_count` (layers) */
  blockCount?: number;
  /** tensors in the file */
  tensorCount: number;
  /** a multimodal projector (`general.architecture` is 'clip') rather than a language model */
  isProjector: boolean;
  /** for a model: ['text']; for a projector: the encoders it has ('image', 'audio') */
  modalities: ('text' | 'image' | 'audio')[];
  /** `clip.projector_type` (or the vision/audio one), for a projector */
  projectorType?: string;
}

export interface InspectOptions {
  /** aborts reading the header */
  signal?: AbortSignal | undefined;
}

/** Keys skipped when reading a header for a summary: the tokenizer tables are large and not shown. */
const IGNORED_KEYS = [
  'tokenizer.ggml.tokens',
  'tokenizer.ggml.scores',
  'tokenizer.ggml.token_type',
  'tokenizer.ggml.merges',
];

/**
 * A summary of the GGUF header of `path`.
 * @throws ModelFileError when the file is missing, unreadable, or not GGUF
 */
export async function inspectModel(path: string, options: InspectOptions = {}): Promise<GgufSummary> {
  const abs = resolve(path);
  let size: number;
  let magic: string;
  try {
    const s = await stat(abs);
    if (!s.isFile()) throw new ModelFileError(abs, 'not a file');
    size = s.size;
    const handle = await open(abs, 'r');
    try {
      const head = Buffer.alloc(4);
      const { bytesRead } = await handle.read(head, 0, 4, 0);
      magic = head.subarray(0, bytesRead).toString('latin1');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof ModelFileError) throw error;
    const code = (error as { code?: unknown }).code;
    throw new ModelFileError(abs, code === 'ENOENT' ? 'no such file' : `cannot read: ${describe(error)}`);
  }
  if (magic !== 'GGUF') {
    throw new ModelFileError(abs, `not a GGUF file (starts with ${JSON.stringify(magic)}, expected "GGUF")`);
  }
  const { readGgufFileInfo } = await llamaCpp();
  let info: Awaited<ReturnType<typeof readGgufFileInfo>>;
  try {
    info = await readGgufFileInfo(abs, {
      sourceType: 'filesystem',
      readTensorInfo: false,
      logWarnings: false,
      ignoreKeys: IGNORED_KEYS,
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (error) {
    if (options.signal?.aborted) throw options.signal.reason;
    throw new ModelFileError(abs, `not a valid GGUF file: ${describe(error)}`);
  }
  return summarize(abs, size, info.version, Number(info.tensorCount), info.metadata as unknown as Metadata);
}

type Metadata = Record<string, unknown>;

/** The value at a dotted key of the nested metadata node-llama-cpp returns. */
function metaValue(meta: Metadata, key: string): unknown {
  let node: unknown = meta;
  for (const part of key.split('.')) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Metadata)[part];
  }
  return node;
}

function metaString(meta: Metadata, key: string): string | undefined {
  const v = metaValue(meta, key);
  return typeof v === 'string' ? v : undefined;
}

function metaNumber(meta: Metadata, key: string): number | undefined {
  const v = metaValue(meta, key);
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
}

/** 'Q4_K_M' from GgufFileType.MOSTLY_Q4_K_M, 'F32' from ALL_F32. */
/**
 * node-llama-cpp's JavaScript, loaded on first use: the daemon resolves and lists models without it and
 * stays about 30 MB smaller; only the worker and `outpost model` load it.
 */
let loaded: typeof import('node-llama-cpp') | undefined;
async function llamaCpp(): Promise<typeof import('node-llama-cpp')> {
  loaded ??= await import('node-llama-cpp');
  return loaded;
}

export function fileTypeName(id: number): string | undefined {
  const name = (loaded?.GgufFileType as unknown as Record<number, string | undefined> | undefined)?.[id];
  return name?.replace(/^(MOSTLY|ALL)_/, '');
}

/** Pure: the summary of an already parsed header. */
export function summarize(
  path: string,
  fileSizeBytes: number,
  ggufVersion: number,
  tensorCount: number,
  meta: Metadata,
): GgufSummary {
  const architecture = metaString(meta, 'general.architecture') ?? 'unknown';
  const isProjector = architecture === 'clip';
  const fileTypeId = metaNumber(meta, 'general.file_type');
  const modalities: GgufSummary['modalities'] = [];
  if (isProjector) {
    if (metaValue(meta, 'clip.has_vision_encoder') === true) modalities.push('image');
    if (metaValue(meta, 'clip.has_audio_encoder') === true) modalities.push('audio');
  } else {
    modalities.push('text');
  }
  const optional = <K extends string, V>(key: K, value: V | undefined) =>
    (value === undefined ? {} : { [key]: value }) as Partial<Record<K, V>>;
  return {
    path,
    fileSizeBytes,
    ggufVersion,
    architecture,
    ...optional('name', metaString(meta, 'general.name')),
    ...optional('sizeLabel', metaString(meta, 'general.size_label')),
    ...optional(
      'fileType',
      fileTypeId === undefined ? undefined : (fileTypeName(fileTypeId) ?? `type ${fileTypeId}`),
    ),
    ...optional('fileTypeId', fileTypeId),
    ...optional('contextLength', metaNumber(meta, `${architecture}.context_length`)),
    ...optional('embeddingLength', metaNumber(meta, `${architecture}.embedding_length`)),
    ...optional('blockCount', metaNumber(meta, `${architecture}.block_count`)),
    tensorCount,
    isProjector,
    modalities,
    ...optional(
      'projectorType',
      isProjector
        ? (metaString(meta, 'clip.projector_type') ??
            metaString(meta, 'clip.vision.projector_type') ??
            metaString(meta, 'clip.audio.projector_type'))
        : undefined,
    ),
  };
}
