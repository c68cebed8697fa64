/**
 * `outpost doctor`'s model checks: the model files are there and are language models, and the largest
 * variant and context the memory governor would load fit the budget (the governor's own estimate, budget and
 * planner). The projector check (doctorProjector.ts) shares the model files resolved here.
 */
import { stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { Config } from '../config/index.js';
// The governor's pure planner and the worker's estimator: the face of src/inference exports neither yet.
import {
  CATALOG,
  type CatalogEntry,
  computeBudget,
  type GgufSummary,
  GOVERNOR_MARGIN,
  inspectModel,
  loadEstimator,
  ModelFileError,
  plan,
  resolveModel,
  scaledRamEstimate,
  systemMemoryProbe,
  type VariantOption,
} from '../inference/index.js';
import type { DoctorCheck } from './doctor.js';
import { firstLine, formatBytes } from './doctorChecks.js';

/** One configured model (model.name, then model.variants) and what is known of its file. */
export interface ModelFile {
  /** as configured: a catalog name or a path */
  name: string;
  /** the governor's id: the catalog name, or the file name */
  id: string;
  path: string;
  entry?: CatalogEntry | undefined;
  /** the GGUF header, when the file is there and is a language model */
  summary?: GgufSummary | undefined;
  problem?: string | undefined;
  fix?: string | undefined;
}

interface ModelSetup {
  dir: string;
  /** whether model.name (or model.variants) names anything; if not, `files` are the catalog's Gemma 3n */
  named: boolean;
  files: ModelFile[];
}

const setups = new WeakMap<Config, Promise<ModelSetup>>();

/** The configured models, resolved and inspected once per configuration. */
export function modelSetup(config: Config): Promise<ModelSetup> {
  let setup = setups.get(config);
  if (!setup) {
    setup = resolveSetup(config);
    setups.set(config, setup);
  }
  return setup;
}

/** `outpost model pull NAME`, with `--dir` where the model folder is not the command's default. */
export function pullCommand(name: string, dir: string): string {
  const pullDefault = resolve(process.env.OUTPOST_DATA_DIR ?? './data', 'models');
  return `\`outpost model pull ${name}${dir === pullDefault ? '' : ` --dir ${dir}`}\``;
}

async function resolveSetup(config: Config): Promise<ModelSetup> {
  const dir = resolve(config.model.dir ?? join(config.dataDir, 'models'));
  const names = [...new Set([config.model.name, ...(config.model.variants ?? [])].filter((n) => !!n))];
  const named = names.length > 0;
  // Nothing named: the daemon takes any Gemma 3n of the catalog that is in the model folder.
  const wanted = named
    ? (names as string[])
    : CATALOG.filter((e) => e.family === 'gemma-3n').map((e) => e.name);
  const files: ModelFile[] = [];
  for (const name of wanted) {
    const resolved = resolveModel(name, dir);
    if (resolved.kind === 'unknown') {
      files.push({
        name,
        id: name,
        path: '',
        problem: `"${name}" is neither a GGUF path nor a catalog name`,
        fix: 'set OUTPOST_MODEL (model.name) to a catalog name (`outpost model list`) or a path ending in .gguf',
      });
      continue;
    }
    const entry = resolved.kind === 'catalog' ? resolved.entry : undefined;
    const file: ModelFile = { name, id: entry?.name ?? basename(resolved.path), path: resolved.path, entry };
    files.push(file);
    if (resolved.kind === 'catalog' && !resolved.present) {
      file.problem = `${name} is not downloaded yet (${resolved.path})`;
      file.fix = `run ${pullCommand(name, dir)} (it resumes an unfinished download), or copy the file there`;
      continue;
    }
    try {
      const summary = await inspectModel(resolved.path);
      if (summary.isProjector) {
        file.problem = `${resolved.path} is a projector (mmproj), not a language model`;
        file.fix =
          'name it in model.mmproj (OUTPOST_MMPROJ) and set OUTPOST_MODEL to the language model GGUF';
      } else if (!(summary.tensorCount > 0)) {
        file.problem = `${resolved.path} has no tensors (truncated?)`;
        file.fix = entry
          ? `delete it and run ${pullCommand(name, dir)}`
          : 'copy the complete GGUF there again';
      } else {
        file.summary = summary;
      }
    } catch (error) {
      file.problem = error instanceof ModelFileError ? error.message : firstLine(error);
      file.fix = entry
        ? `run ${pullCommand(name, dir)}`
        : `copy the GGUF to ${resolved.path}, or set OUTPOST_MODEL to the path of the model file`;
    }
  }
  return { dir, named, files };
}

const modelCheck: DoctorCheck = {
  id: 'model',
  timeoutMs: 10_000,
  timeoutFix: 'reading the GGUF header hangs: check the volume the model is on (`ls -l` the file)',
  async run({ config }) {
    const { dir, named, files } = await modelSetup(config);
    if (!named) {
      // Only what is there counts: the catalog models that are not are no problem.
      const found = files.filter((f) => f.summary);
      if (found.length > 0) {
        return {
          status: 'ok',
          message: `none named; found ${found.map((f) => f.id).join(', ')} in ${dir}`,
          details: { dir, models: found.map((f) => f.path) },
        };
      }
      return {
        status: 'fail',
        message: `no model configured and none in ${dir}`,
        fix: `run ${pullCommand('gemma-3n-e2b-q4_k_m', dir)}, or set OUTPOST_MODEL to a GGUF path`,
      };
    }
    const [first, ...variants] = files;
    const details = { dir, models: files.map((f) => ({ name: f.name, path: f.path, ok: !!f.summary })) };
    if (!first?.summary) return { status: 'fail', message: first?.problem ?? '?', fix: first?.fix, details };
    const missing = variants.filter((v) => !v.summary);
    const s = first.summary;
    const what = `${first.id} (${s.architecture}${s.fileType ? ` ${s.fileType}` : ''}, ${formatBytes(s.fileSizeBytes)})`;
    if (missing.length > 0) {
      return {
        status: 'warn',
        message: `${what}; variant ${missing.map((m) => m.problem).join('; ')}`,
        fix: missing.map((m) => m.fix).join('; '),
        details,
      };
    }
    const more = variants.length > 0 ? `; variants ${variants.map((v) => v.id).join(', ')}` : '';
    return { status: 'ok', message: `${what}${more}`, details };
  },
};

/** What the engine adds for a projector: its weights plus a quarter and 64 MiB (src/inference/engine.ts). */
function projectorBytes(bytes: number | undefined): number {
  return bytes === undefined ? 0 : Math.round(bytes * 1.25) + 64 * 1024 * 1024;
}

const memoryCheck: DoctorCheck = {
  id: 'memory',
  timeoutMs: 20_000,
  timeoutFix:
    'estimating hangs in the llama.cpp binding: set model.gpu to off (OUTPOST_MODEL_GPU=off) and try again',
  async run({ config }) {
    const { files } = await modelSetup(config);
    const present = files.filter((f) => f.summary);
    const { contextSizes, mmproj, memoryCap, reserve } = config.model;
    const projector = mmproj ? projectorBytes(await statSize(resolve(mmproj))) : 0;
    let variants: VariantOption[];
    let source: string;
    if (present.length > 0) {
      const { estimateModels } = await loadEstimator();
      const gpu = config.model.gpu === 'off' ? false : 'auto';
      let estimates: Awaited<ReturnType<typeof estimateModels>>;
      try {
        estimates = await estimateModels(
          present.map((f) => f.path),
          contextSizes,
          gpu,
        );
      } catch (error) {
        return {
          status: 'fail',
          message: `cannot estimate: ${firstLine(error)}`,
          fix: 'see the native.node-llama-cpp and model checks',
        };
      }
      // Ranked as the engine ranks them: by their largest estimate.
      variants = present
        .map((f, i) => ({ id: f.id, perContext: estimates[i]?.perContext ?? [] }))
        .sort(
          (a, b) =>
            Math.max(...a.perContext.map((p) => p.bytes)) - Math.max(...b.perContext.map((p) => p.bytes)),
        )
        .map((v, rank) => ({
          id: v.id,
          rank,
          estimates: v.perContext.map((p) => ({ contextSize: p.contextSize, bytes: p.bytes + projector })),
        }));
      source = 'llama.cpp estimate';
    } else {
      const catalog = files.filter((f): f is ModelFile & { entry: CatalogEntry } => f.entry !== undefined);
      if (catalog.length === 0) {
        return {
          status: 'warn',
          message: 'not checked: no model file to estimate',
          fix: 'see the model check',
        };
      }
      variants = catalog.map((f, rank) => ({
        id: f.id,
        rank,
        estimates: contextSizes.map((c) => ({ contextSize: c, bytes: scaledRamEstimate(f.entry, c) })),
      }));
      source = 'catalog estimate, file not there yet';
    }
    const sample = systemMemoryProbe().sample();
    // This process stands in for the daemon, whose own RSS the cgroup limit also holds.
    const { budgetBytes, limitedBy } = computeBudget(sample, {
      capBytes: memoryCap,
      reserveBytes: reserve,
      selfRssBytes: process.memoryUsage.rss(),
    });
    const { decision } = plan(
      variants,
      { corrections: {}, killed: [] },
      { budgetBytes, now: 0 },
      { margin: GOVERNOR_MARGIN, holdMs: 0, pressureHighPercent: 100, killedCooldownMs: 0 },
    );
    const usable = budgetBytes * (1 - GOVERNOR_MARGIN);
    const by = {
      cap: 'model.memoryCap',
      cgroup: 'the cgroup memory limit',
      available: `MemAvailable ${formatBytes(sample.memAvailable)} − model.reserve ${formatBytes(reserve)}`,
    }[limitedBy];
    const budget = `budget ${formatBytes(budgetBytes)} (${by}), usable ${formatBytes(usable)}`;
    const details = {
      budgetBytes,
      limitedBy,
      usableBytes: Math.floor(usable),
      sample,
      source,
      considered: decision.considered,
    };
    const label = (c: { id: string; contextSize: number }) => `${c.id}@${c.contextSize}`;
    const target = decision.target;
    const preferred = decision.considered[0];
    if (target && preferred) {
      const fits = `${label(target)} needs ${formatBytes(target.estimatedBytes)}`;
      if (target.id === preferred.id && target.contextSize === preferred.contextSize) {
        return { status: 'ok', message: `largest that fits: ${fits} of ${budget}; ${source}`, details };
      }
      return {
        status: 'warn',
        message: `only a smaller configuration fits: ${fits}, ${label(preferred)} ${formatBytes(preferred.estimatedBytes)}; ${budget}; ${source}`,
        fix: `to load ${label(preferred)}, ${raise(limitedBy, preferred.estimatedBytes)}`,
        details,
      };
    }
    const smallest = [...decision.considered].sort((a, b) => a.estimatedBytes - b.estimatedBytes)[0];
    return {
      status: 'fail',
      message: smallest
        ? `nothing fits: the smallest, ${label(smallest)}, needs ${formatBytes(smallest.estimatedBytes)}; ${budget}`
        : 'nothing to estimate',
      fix: smallest
        ? `${raise(limitedBy, smallest.estimatedBytes)}, or offer a smaller variant or context (model.variants, model.contextSizes)`
        : 'see the model check',
      details,
    };
  },
};

/** How to make `bytes` fit, by what limits the budget. */
function raise(limitedBy: 'cap' | 'cgroup' | 'available', bytes: number): string {
  const need = Math.ceil(bytes / (1 - GOVERNOR_MARGIN));
  if (limitedBy === 'cap') {
    return `raise model.memoryCap (OUTPOST_MODEL_MEMORY_CAP) to at least ${need} (${formatBytes(need)})`;
  }
  if (limitedBy === 'cgroup') {
    return `raise the container's or service's memory limit (docker --memory, systemd MemoryMax=) so ${formatBytes(need)} are left for the model`;
  }
  return `free memory (stop other services) or lower model.reserve (OUTPOST_MODEL_RESERVE) so ${formatBytes(need)} are left for the model`;
}

/** The size of the file at `path`, bytes; undefined when it is not there. */
export function statSize(path: string): Promise<number | undefined> {
  return stat(path).then(
    (s) => s.size,
    () => undefined,
  );
}

export const modelChecks: DoctorCheck[] = [modelCheck, memoryCheck];
