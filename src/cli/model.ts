/**
 * `outpost model pull|list|inspect`: thin shells over src/inference (modelPull.ts, modelFiles.ts).
 * Output goes through the command's output configuration (commander `configureOutput`), so a caller can capture it.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { OutpostError } from '../common/index.js';
import {
  CATALOG,
  type CatalogEntry,
  type GgufSummary,
  ggufRamEstimate,
  inspectModel,
  listModels,
  type ModelRow,
  type PullProgress,
  pullModel,
  resolveModel,
} from '../inference/index.js';

/**
 * Default model directory, as the daemon resolves `model.dir`: `$OUTPOST_MODEL_DIR`, else
 * `$OUTPOST_DATA_DIR/models`, else `./data/models` (read when the command runs).
 */
export function defaultModelDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.OUTPOST_MODEL_DIR || `${env.OUTPOST_DATA_DIR || './data'}/models`;
}

const EXIT_FAILURE = 1;
const EXIT_INTERRUPTED = 130;

const positiveInt = (text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

interface Output {
  out: (text: string) => void;
  err: (text: string) => void;
}

function outputOf(command: Command): Output {
  const config = command.configureOutput();
  return {
    out: (text) => (config.writeOut ? config.writeOut(text) : process.stdout.write(text)),
    err: (text) => (config.writeErr ? config.writeErr(text) : process.stderr.write(text)),
  };
}

/** Runs `action`; an Outpost error (or an abort) ends the command with its one-line message and exit code 1 (130). */
async function guarded(command: Command, action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (error) {
    if (error instanceof OutpostError) {
      command.error(`outpost: ${error.message}`, { exitCode: EXIT_FAILURE, code: error.code });
    }
    if (error instanceof Error && error.name === 'AbortError') {
      command.error('outpost: interrupted; run the same command again to resume', {
        exitCode: EXIT_INTERRUPTED,
        code: 'outpost.interrupted',
      });
    }
    throw error;
  }
}

export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('download, list and inspect GGUF models');

  const pull = model
    .command('pull')
    .argument('<name>', `catalog model name (see \`outpost model list\`)`)
    .description('download a catalog model (and its projector), resuming an interrupted download')
    .option(
      '-d, --dir <dir>',
      'model directory (default: $OUTPOST_MODEL_DIR, else $OUTPOST_DATA_DIR/models, else ./data/models)',
    )
    .action(async (name: string, opts: { dir?: string }) => {
      await guarded(pull, () => runPull(pull, name, opts.dir ?? defaultModelDir()));
    });

  const list = model
    .command('list')
    .description('list the catalog and the GGUF files in the model directory')
    .option(
      '-d, --dir <dir>',
      'model directory (default: $OUTPOST_MODEL_DIR, else $OUTPOST_DATA_DIR/models, else ./data/models)',
    )
    .option('-c, --context <tokens>', 'context size the RAM estimate is for', positiveInt, 4096)
    .action(async (opts: { dir?: string; context: number }) => {
      await guarded(list, async () => {
        const rows = await listModels(opts.dir ?? defaultModelDir(), {
          contextSize: opts.context,
          estimate: (path) => ggufRamEstimate(path, opts.context),
        });
        outputOf(list).out(formatModelTable(rows, opts.context));
      });
    });

  const inspect = model
    .command('inspect')
    .argument('<file>', 'GGUF file')
    .description('show the GGUF header of a model or projector file')
    .option('--json', 'print the summary as JSON')
    .action(async (file: string, opts: { json?: boolean }) => {
      await guarded(inspect, async () => {
        const summary = await inspectModel(file);
        outputOf(inspect).out(opts.json ? `${JSON.stringify(summary, null, 2)}\n` : formatSummary(summary));
      });
    });
}

async function runPull(command: Command, name: string, dir: string): Promise<void> {
  const io = outputOf(command);
  const resolved = resolveModel(name, dir);
  if (resolved.kind !== 'catalog') {
    const names = CATALOG.map((e) => e.name).join(', ');
    const what =
      resolved.kind === 'path' ? `"${name}" is a file path, nothing to pull` : `unknown model "${name}"`;
    command.error(`outpost: ${what}; catalog models: ${names}`, {
      exitCode: EXIT_FAILURE,
      code: 'outpost.model',
    });
  }
  const entry: CatalogEntry = resolved.entry;
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const tty = process.stderr.isTTY === true;
  const bar = new ProgressPrinter(io.err, tty);
  try {
    const result = await pullModel(entry, {
      dir,
      signal: controller.signal,
      onProgress: (p) => bar.update(p),
    });
    bar.finish();
    for (const f of result.files) {
      const how =
        f.status === 'present' ? 'already present' : `${f.status}, ${mb(f.transferredBytes)} MB fetched`;
      io.out(`${f.path} (${how})\n`);
    }
  } finally {
    bar.finish();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** One updating line on a terminal; a plain line every `plainEveryMs` (and at each file's end) otherwise. */
class ProgressPrinter {
  private lastPlain = 0;
  private openLine = false;
  private lastFile: string | undefined;

  constructor(
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
    /** interval between plain lines when not on a terminal, ms */
    private readonly plainEveryMs = 5_000,
    private readonly now: () => number = Date.now,
  ) {}

  update(p: PullProgress): void {
    const done = p.totalBytes !== undefined && p.receivedBytes >= p.totalBytes;
    if (this.tty) {
      if (this.openLine && this.lastFile !== p.file) this.write('\n');
      this.write(`\r\x1b[2K${formatProgress(p)}`);
      this.openLine = true;
      this.lastFile = p.file;
      if (done) this.finish();
      return;
    }
    const t = this.now();
    if (done || this.lastFile !== p.file || t - this.lastPlain >= this.plainEveryMs) {
      this.write(`${formatProgress(p)}\n`);
      this.lastPlain = t;
      this.lastFile = p.file;
    }
  }

  finish(): void {
    if (this.tty && this.openLine) this.write('\n');
    this.openLine = false;
  }
}

const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);

function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `gemma-3n-E2B-it-Q4_K_M.gguf  42.1%  1274.3/3026.9 MB  11.2 MB/s  ETA 2m36s` */
function formatProgress(p: PullProgress): string {
  const parts = [p.file];
  if (p.totalBytes !== undefined && p.totalBytes > 0) {
    parts.push(`${((100 * p.receivedBytes) / p.totalBytes).toFixed(1).padStart(5)}%`);
    parts.push(`${mb(p.receivedBytes)}/${mb(p.totalBytes)} MB`);
  } else {
    parts.push(`${mb(p.receivedBytes)} MB`);
  }
  parts.push(`${mb(p.bytesPerSecond)} MB/s`);
  if (p.totalBytes !== undefined && p.bytesPerSecond > 0 && p.receivedBytes < p.totalBytes) {
    parts.push(`ETA ${duration((p.totalBytes - p.receivedBytes) / p.bytesPerSecond)}`);
  }
  return parts.join('  ');
}

const gb = (bytes: number | undefined): string =>
  bytes === undefined ? '?' : `${(bytes / 1e9).toFixed(2)} GB`;

/** The `model list` table: name, local state, file size, RAM estimate at the context, inputs. */
function formatModelTable(rows: readonly ModelRow[], contextSize: number): string {
  const header = ['NAME', 'LOCAL', 'SIZE', `RAM@${contextSize}`, 'INPUTS'];
  const body = rows.map((r) => {
    let local = r.present ? 'yes' : 'no';
    if (r.present && r.mmprojPresent === false) local = 'no projector';
    if (!r.present && r.partialBytes !== undefined) {
      local = r.sizeBytes ? `${Math.floor((100 * r.partialBytes) / r.sizeBytes)}% (partial)` : 'partial';
    }
    if (r.source === 'local') local = 'yes (not in catalog)';
    return [r.name, local, gb(r.sizeBytes), gb(r.estimatedRamBytes), r.modalities?.join('+') ?? '?'];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[header, ...body].map(line).join('\n')}\n`;
}

/** `model inspect` without --json: one `key: value` line per field. */
function formatSummary(s: GgufSummary): string {
  const lines: [string, string | number | undefined][] = [
    ['file', s.path],
    ['size', `${s.fileSizeBytes} bytes (${gb(s.fileSizeBytes)})`],
    ['gguf version', s.ggufVersion],
    ['architecture', s.architecture],
    ['kind', s.isProjector ? `projector (${s.modalities.join('+') || 'no encoders'})` : 'language model'],
    ['name', s.name],
    ['size label', s.sizeLabel],
    ['quantization', s.fileType],
    ['context length', s.contextLength],
    ['embedding length', s.embeddingLength],
    ['blocks', s.blockCount],
    ['tensors', s.tensorCount],
    ['projector type', s.projectorType],
  ];
  return lines
    .filter((l): l is [string, string | number] => l[1] !== undefined)
    .map(([k, v]) => `${`${k}:`.padEnd(18)}${v}\n`)
    .join('');
}
