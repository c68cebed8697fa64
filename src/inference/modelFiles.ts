/**
 * Knowing the model files on the gateway: name-or-path resolution, a listing of what is local, RAM estimates
 * and a GGUF summary. node-llama-cpp is loaded lazily, only by the functions that read GGUF headers.
 */
import { statSync } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  APPROX_RAM_CONTEXT,
  CATALOG,
  type CatalogEntry,
  type CatalogFile,
  findCatalogEntry,
} from './catalog.js';
import { describeError, ModelFileError } from './errors.js';

// ---------------------------------------------------------------------------------------------------------
// resolve and list

/** Size of the file at `path` in bytes; `missing` when it cannot be stat'ed. */
export async function sizeOf(path: string, missing = 0): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return missing;
  }
}

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
    throw new ModelFileError(
      abs,
      code === 'ENOENT' ? 'no such file' : `cannot read: ${describeError(error)}`,
    );
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
    throw new ModelFileError(abs, `not a valid GGUF file: ${describeError(error)}`);
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

/**
 * node-llama-cpp's JavaScript, loaded on first use: the daemon resolves and lists models without it and
 * stays about 30 MB smaller; only the worker and `outpost model` load it.
 */
let loaded: typeof import('node-llama-cpp') | undefined;
async function llamaCpp(): Promise<typeof import('node-llama-cpp')> {
  loaded ??= await import('node-llama-cpp');
  return loaded;
}

/** 'Q4_K_M' from GgufFileType.MOSTLY_Q4_K_M, 'F32' from ALL_F32. */
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
