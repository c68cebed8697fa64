import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CATALOG,
  type CatalogEntry,
  type CatalogFile,
  findCatalogEntry,
} from '../../src/inference/catalog.js';
import { ModelFileError, ModelPullError } from '../../src/inference/errors.js';
import { inspectModel, listModels, resolveModel, scaledRamEstimate } from '../../src/inference/modelFiles.js';
import { type PullProgress, pullModel } from '../../src/inference/modelPull.js';
import { metadataOnlyGguf } from '../fixtures/gguf/writer.js';

// ---- a real HTTP server on 127.0.0.1 serving generated files --------------------------------------------

interface Served {
  path: string;
  range: string | undefined;
  status: number;
  /** body bytes the server handed to the socket */
  bytesSent: number;
}

interface Behaviour {
  /** answer every request with 200 and the whole file, whatever its Range header */
  ignoreRange?: boolean;
  /** close the connection after this many body bytes, on the first request only */
  cutFirstAfter?: number;
  /** pause between 16 KiB chunks, ms */
  chunkDelayMs?: number;
}

const CHUNK = 16 * 1024;

let server: http.Server;
let baseUrl: string;
let files: Map<string, Buffer>;
let served: Served[];
let behaviour: Behaviour;
let dir: string;

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  const range = req.headers.range;
  const record: Served = { path, range, status: 0, bytesSent: 0 };
  served.push(record);
  const content = files.get(path);
  if (!content) {
    record.status = 404;
    res.writeHead(404).end('not found');
    return;
  }
  let start = 0;
  const m = range && !behaviour.ignoreRange ? /^bytes=(\d+)-$/.exec(range) : null;
  if (m) {
    start = Number(m[1]);
    if (start >= content.length) {
      record.status = 416;
      res.writeHead(416, { 'content-range': `bytes */${content.length}` }).end();
      return;
    }
    record.status = 206;
    res.writeHead(206, {
      'content-length': content.length - start,
      'content-range': `bytes ${start}-${content.length - 1}/${content.length}`,
    });
  } else {
    record.status = 200;
    res.writeHead(200, { 'content-length': content.length, 'accept-ranges': 'bytes' });
  }
  const cutAt = served.length === 1 ? behaviour.cutFirstAfter : undefined;
  let closed = false;
  res.on('close', () => {
    closed = true;
  });
  for (let at = start; at < content.length && !closed; at += CHUNK) {
    let end = Math.min(at + CHUNK, content.length);
    if (cutAt !== undefined) end = Math.min(end, start + cutAt);
    const piece = content.subarray(at, end);
    await new Promise<void>((done) => res.write(piece, () => done()));
    record.bytesSent += piece.length;
    if (cutAt !== undefined && record.bytesSent >= cutAt) {
      res.socket?.destroy();
      return;
    }
    if (behaviour.chunkDelayMs) await delay(behaviour.chunkDelayMs);
  }
  res.end();
}

beforeEach(async () => {
  files = new Map();
  served = [];
  behaviour = {};
  dir = mkdtempSync(join(tmpdir(), 'outpost-models-'));
  server = http.createServer((req, res) => {
    void handle(req, res);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(dir, { recursive: true, force: true });
});

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A catalog-shaped entry whose files are served by the test server (the https origin is replaced by baseUrl). */
function serve(fileName: string, content: Buffer, overrides: Partial<CatalogFile> = {}): CatalogFile {
  const urlPath = `/test-org/tiny-GGUF/resolve/main/${fileName}`;
  files.set(urlPath, content);
  return {
    url: `https://huggingface.co${urlPath}`,
    fileName,
    sizeBytes: content.length,
    sha256: sha256(content),
    ...overrides,
  };
}

function entryWith(model: CatalogFile, mmproj?: CatalogFile): CatalogEntry {
  return {
    name: 'tiny-e2b-q4_k_m',
    family: 'gemma-3n',
    size: 'E2B',
    quant: 'Q4_K_M',
    model,
    ...(mmproj ? { mmproj } : {}),
    contextLength: 32_768,
    modalities: ['text'],
    approxRamBytes: 1_000_000,
  };
}

async function pullError(promise: Promise<unknown>): Promise<ModelPullError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelPullError);
  return error as ModelPullError;
}

// ---- pull ---------------------------------------------------------------------------------------------------

describe('pullModel', () => {
  it('downloads model and projector, reporting progress, and verifies them', async () => {
    const weights = randomBytes(600_000);
    const projector = randomBytes(100_000);
    const entry = entryWith(serve('tiny-Q4_K_M.gguf', weights), serve('mmproj-tiny-F16.gguf', projector));
    const progress: PullProgress[] = [];

    const result = await pullModel(entry, {
      dir,
      baseUrl,
      onProgress: (p) => progress.push(p),
      progressIntervalMs: 0,
    });

    expect(result.modelPath).toBe(join(dir, 'tiny-Q4_K_M.gguf'));
    expect(result.mmprojPath).toBe(join(dir, 'mmproj-tiny-F16.gguf'));
    expect(sha256(readFileSync(result.modelPath))).toBe(sha256(weights));
    expect(sha256(readFileSync(result.mmprojPath!))).toBe(sha256(projector));
    expect(result.files.map((f) => [f.status, f.transferredBytes])).toEqual([
      ['downloaded', weights.length],
      ['downloaded', projector.length],
    ]);
    expect(readdirSync(dir).sort()).toEqual(['mmproj-tiny-F16.gguf', 'tiny-Q4_K_M.gguf']);

    const model = progress.filter((p) => p.file === 'tiny-Q4_K_M.gguf');
    expect(model.length).toBeGreaterThan(2);
    for (let i = 1; i < model.length; i++) {
      expect(model[i]!.receivedBytes).toBeGreaterThanOrEqual(model[i - 1]!.receivedBytes);
    }
    expect(model.at(-1)).toMatchObject({ receivedBytes: weights.length, totalBytes: weights.length });
    expect(model.at(-1)!.bytesPerSecond).toBeGreaterThan(0);
    expect(progress.at(-1)).toMatchObject({ file: 'mmproj-tiny-F16.gguf', receivedBytes: projector.length });
    expect(served.map((s) => s.range)).toEqual([undefined, undefined]);
  });

  it('resumes with a Range request after the server cut the connection mid-file', async () => {
    const weights = randomBytes(1_000_000);
    const entry = entryWith(serve('tiny-Q4_K_M.gguf', weights));
    behaviour.cutFirstAfter = 400_000;

    const result = await pullModel(entry, { dir, baseUrl, retryDelayMs: 10 });

    expect(sha256(readFileSync(result.modelPath))).toBe(sha256(weights));
    expect(result.files[0]!.status).toBe('resumed');
    expect(served).toHaveLength(2);
    const second = served[1]!;
    const start = Number(/^bytes=(\d+)-$/.exec(second.range ?? '')?.[1]);
    expect(start).toBeGreaterThan(0);
    expect(start).toBeLessThanOrEqual(400_000);
    expect(second.status).toBe(206);
    // Only the rest crossed the wire the second time.
    expect(second.bytesSent).toBe(weights.length - start);
    expect(result.files[0]!.transferredBytes).toBe(weights.length);
  });

  it('leaves the .part after a broken transfer when retries are spent; the next pull resumes it', async () => {
    const weights = randomBytes(800_000);
    const entry = entryWith(serve('tiny-Q4_K_M.gguf', weights));
    behaviour.cutFirstAfter = 300_000;

    const error = await pullError(pullModel(entry, { dir, baseUrl, retries: 0 }));
    expect(error.code).toBe('OUTPOST_MODEL_INTERRUPTED');
    expect(error.message).toMatch(/run the same command again to resume/);
    const partSize = statSync(join(dir, 'tiny-Q4_K_M.gguf.part')).size;
    expect(partSize).toBeGreaterThan(0);
    expect(partSize).toBeLessThan(weights.length);

    const result = await pullModel(entry, { dir, baseUrl });
    expect(served[1]).toMatchObject({
      range: `bytes=${partSize}-`,
      status: 206,
      bytesSent: weights.length - partSize,
    });
    expect(sha256(readFileSync(result.modelPath))).toBe(sha256(weights));
  });

  it('restarts cleanly when the server ignores Range and sends the whole file (200)', async () => {
    const weights = randomBytes(500_000);
    const entry = entryWith(serve('tiny-Q4_K_M.gguf', weights));
    writeFileSync(join(dir, 'tiny-Q4_K_M.gguf.part'), randomBytes(123_456)); // not even the right bytes
    behaviour.ignoreRange = true;

    const result = await pullModel(entry, { dir, baseUrl });

    expect(served).toHaveLength(1);
    expect(served[0]).toMatchObject({ range: 'bytes=123456-', status: 200, bytesSent: weights.length });
    expect(sha256(readFileSync(result.modelPath))).toBe(sha256(weights));
    expect(readdirSync(dir)).toEqual(['tiny-Q4_K_M.gguf']);
  });

  it('rejects a file whose sha256 is wrong, naming both digests, and leaves nothing behind', async () => {
    const weights = randomBytes(200_000);
    const wrong = 'ab'.repeat(32);
    const entry = entryWith(serve('tiny-Q4_K_M.gguf', weights, { sha256: wrong }));

    const error = await pullError(pullModel(entry, { dir, baseUrl }));

    expect(error.code).toBe('OUTPOST_MODEL_CHECKSUM');
    expect(error.message).toContain(wrong);
    expect(error.message).toContain(sha256(weights));
    expect(readdirSync(dir)).toEqual([]);
  });

  it('reports an HTTP 404 with its status', async () => {
    const entry = entryWith({
      url: 'https://huggingface.co/test-org/tiny-GGUF/resolve/main/gone.gguf',
      fileName: 'gone.gguf',
    });

    const error = await pullError(pullModel(entry, { dir, baseUrl }));

    expect(error.code).toBe('OUTPOST_MODEL_HTTP');
    expect(error.failure).toMatchObject({ kind: 'http', status: 404 });
    expect(error.message).toContain('HTTP 404');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('says the host is unreachable in one actionable line naming the file and the directory', async () => {
    const closed = http.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const entry = entryWith(serve('gemma-3n-E2B-it-Q4_K_M.gguf', randomBytes(1000)));

    const error = await pullError(pullModel(entry, { dir, baseUrl: `http://127.0.0.1:${port}` }));

    expect(error.code).toBe('OUTPOST_MODEL_OFFLINE');
    expect(error.message).not.toContain('\n');
    expect(error.message).toContain(`cannot reach 127.0.0.1:${port} (offline?)`);
    expect(error.message).toContain(`copy gemma-3n-E2B-it-Q4_K_M.gguf into ${resolve(dir)}`);
    expect(error.message).toContain('OUTPOST_MODEL');
    expect(error.message).toContain('ECONNREFUSED');
  });

  it('stops on abort, keeping a .part that a later pull resumes', async () => {
    const weights = randomBytes(1_000_000);
    const entry = entryWith(serve('tiny-Q4_K_M.gguf', weights));
    behaviour.chunkDelayMs = 20;
    const controller = new AbortController();

    const aborted = await pullModel(entry, {
      dir,
      baseUrl,
      signal: controller.signal,
      progressIntervalMs: 0,
      onProgress: (p) => {
        if (p.receivedBytes >= 3 * CHUNK) controller.abort();
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((aborted as Error).name).toBe('AbortError');
    const partSize = statSync(join(dir, 'tiny-Q4_K_M.gguf.part')).size;
    expect(partSize).toBeGreaterThanOrEqual(3 * CHUNK);
    expect(partSize).toBeLessThan(weights.length);

    behaviour.chunkDelayMs = 0;
    const result = await pullModel(entry, { dir, baseUrl });
    expect(result.files[0]!.status).toBe('resumed');
    expect(served.at(-1)).toMatchObject({
      range: `bytes=${partSize}-`,
      bytesSent: weights.length - partSize,
    });
    expect(sha256(readFileSync(result.modelPath))).toBe(sha256(weights));
  });

  it('does not download a file that is already there complete', async () => {
    const weights = randomBytes(300_000);
    const entry = entryWith(serve('tiny-Q4_K_M.gguf', weights));
    writeFileSync(join(dir, 'tiny-Q4_K_M.gguf'), weights);

    const result = await pullModel(entry, { dir, baseUrl });

    expect(result.files[0]).toMatchObject({ status: 'present', transferredBytes: 0 });
    expect(served).toEqual([]);
  });
});

// ---- resolve and list ---------------------------------------------------------------------------------------

describe('resolveModel', () => {
  it('tells paths, catalog names and unknown names apart', () => {
    expect(resolveModel('./models/my.gguf', dir)).toEqual({
      kind: 'path',
      path: resolve('./models/my.gguf'),
    });
    expect(resolveModel('weights/model-v2', dir)).toEqual({
      kind: 'path',
      path: resolve('weights/model-v2'),
    });
    expect(resolveModel('Tiny.GGUF', dir).kind).toBe('path');
    expect(resolveModel('no-such-model', dir)).toEqual({ kind: 'unknown' });

    const entry = findCatalogEntry('gemma-3n-e2b-q4_k_m')!;
    const path = join(dir, entry.model.fileName);
    expect(resolveModel('gemma-3n-e2b-q4_k_m', dir)).toEqual({
      kind: 'catalog',
      entry,
      path,
      present: false,
    });

    writeFileSync(path, 'truncated download');
    expect(resolveModel('gemma-3n-e2b-q4_k_m', dir)).toMatchObject({ kind: 'catalog', present: false });
    truncateSync(path, entry.model.sizeBytes!); // sparse: the right size without the disk use
    expect(resolveModel('GEMMA-3N-E2B-Q4_K_M', dir)).toMatchObject({ kind: 'catalog', path, present: true });
  });
});

describe('listModels', () => {
  it('lists every catalog entry, marks what is local, and adds stray GGUFs', async () => {
    const e2b = findCatalogEntry('gemma-3n-e2b-q4_k_m')!;
    const e4b = findCatalogEntry('gemma-3n-e4b-q4_k_m')!;
    writeFileSync(join(dir, e2b.model.fileName), '');
    truncateSync(join(dir, e2b.model.fileName), e2b.model.sizeBytes!); // sparse
    writeFileSync(join(dir, `${e4b.model.fileName}.part`), randomBytes(1000));
    writeFileSync(join(dir, 'my-finetune.gguf'), randomBytes(2048));
    writeFileSync(join(dir, 'notes.txt'), 'not a model');
    const estimated: string[] = [];

    const rows = await listModels(dir, {
      contextSize: 8192,
      estimate: async (path) => {
        estimated.push(path);
        return 123_456_789;
      },
    });

    expect(rows).toHaveLength(CATALOG.length + 1);
    const byName = new Map(rows.map((r) => [r.name, r]));
    expect(byName.get(e2b.name)).toMatchObject({
      source: 'catalog',
      present: true,
      sizeBytes: e2b.model.sizeBytes,
      estimatedRamBytes: 123_456_789,
    });
    expect(byName.get(e4b.name)).toMatchObject({
      present: false,
      partialBytes: 1000,
      sizeBytes: e4b.model.sizeBytes,
    });
    const e4bRam = byName.get(e4b.name)!.estimatedRamBytes!;
    expect(e4bRam).toBe(scaledRamEstimate(e4b, 8192));
    expect(e4bRam).toBeGreaterThan(e4b.approxRamBytes); // 8k context needs more than the 4k figure
    expect(rows.at(-1)).toEqual({
      name: 'my-finetune.gguf',
      source: 'local',
      present: true,
      sizeBytes: 2048,
      estimatedRamBytes: 123_456_789,
      path: join(dir, 'my-finetune.gguf'),
    });
    expect(byName.has('notes.txt')).toBe(false);
    expect(estimated.sort()).toEqual([join(dir, e2b.model.fileName), join(dir, 'my-finetune.gguf')].sort());
  });

  it('lists the catalog from its own figures when the directory does not exist', async () => {
    const rows = await listModels(join(dir, 'missing'), { contextSize: 4096 });
    expect(rows.map((r) => r.name)).toEqual(CATALOG.map((e) => e.name));
    expect(rows.every((r) => !r.present)).toBe(true);
    const small = rows.find((r) => r.name === 'gemma-3n-e2b-q4_k_m')!;
    expect(small.estimatedRamBytes).toBe(findCatalogEntry('gemma-3n-e2b-q4_k_m')!.approxRamBytes);
  });
});

// ---- inspect ------------------------------------------------------------------------------------------------

describe('inspectModel', () => {
  it('summarizes a language model GGUF', async () => {
    const path = join(dir, 'tiny.gguf');
    const bytes = metadataOnlyGguf([
      ['general.architecture', 'gemma3n'],
      ['general.name', 'Tiny Gemma'],
      ['general.size_label', '4.5B'],
      ['general.file_type', 15],
      ['gemma3n.context_length', 32768],
      ['gemma3n.embedding_length', 2048],
      ['gemma3n.block_count', 30],
    ]);
    writeFileSync(path, bytes);

    expect(await inspectModel(path)).toEqual({
      path,
      fileSizeBytes: bytes.length,
      ggufVersion: 3,
      architecture: 'gemma3n',
      name: 'Tiny Gemma',
      sizeLabel: '4.5B',
      fileType: 'Q4_K_M',
      fileTypeId: 15,
      contextLength: 32768,
      embeddingLength: 2048,
      blockCount: 30,
      tensorCount: 0,
      isProjector: false,
      modalities: ['text'],
    });
  });

  it('recognizes a projector and the encoders it carries', async () => {
    const path = join(dir, 'mmproj.gguf');
    writeFileSync(
      path,
      metadataOnlyGguf([
        ['general.architecture', 'clip'],
        ['general.file_type', 1],
        ['clip.has_vision_encoder', true],
        ['clip.has_audio_encoder', true],
        ['clip.projector_type', 'gemma4'],
      ]),
    );

    expect(await inspectModel(path)).toMatchObject({
      architecture: 'clip',
      isProjector: true,
      modalities: ['image', 'audio'],
      projectorType: 'gemma4',
      fileType: 'F16',
    });
  });

  it('refuses a file that is not GGUF, and a missing one, with a clear message', async () => {
    const path = join(dir, 'fake.gguf');
    writeFileSync(path, 'hello, I am a text file');

    const notGguf = await inspectModel(path).catch((e: unknown) => e);
    expect(notGguf).toBeInstanceOf(ModelFileError);
    expect((notGguf as ModelFileError).code).toBe('OUTPOST_MODEL_FILE');
    expect((notGguf as Error).message).toBe(`${path}: not a GGUF file (starts with "hell", expected "GGUF")`);

    const missing = await inspectModel(join(dir, 'nope.gguf')).catch((e: unknown) => e);
    expect((missing as Error).message).toBe(`${join(dir, 'nope.gguf')}: no such file`);
  });
});
