import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultModelDir, registerModelCommands } from '../../src/cli/model.js';
import { CATALOG, findCatalogEntry } from '../../src/inference/catalog.js';
import { metadataOnlyGguf } from '../fixtures/gguf/writer.js';

interface Run {
  out: string;
  err: string;
  /** undefined: the command returned normally */
  exitCode: number | undefined;
}

/** Runs `outpost model ...` on a fresh program, capturing what it writes. */
async function model(...args: string[]): Promise<Run> {
  const run: Run = { out: '', err: '', exitCode: undefined };
  const program = new Command('outpost').exitOverride().configureOutput({
    writeOut: (s) => {
      run.out += s;
    },
    writeErr: (s) => {
      run.err += s;
    },
  });
  registerModelCommands(program);
  try {
    await program.parseAsync(['model', ...args], { from: 'user' });
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    run.exitCode = error.exitCode;
  }
  return run;
}

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'outpost-model-cli-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the model directory the commands use', () => {
  it('is model.dir as the daemon resolves it: OUTPOST_MODEL_DIR, else <OUTPOST_DATA_DIR>/models', () => {
    expect(defaultModelDir({ OUTPOST_MODEL_DIR: '/models', OUTPOST_DATA_DIR: '/data' })).toBe('/models');
    expect(defaultModelDir({ OUTPOST_DATA_DIR: '/data' })).toBe('/data/models');
    expect(defaultModelDir({})).toBe('./data/models');
  });
});

describe('outpost model list', () => {
  it('prints a table of the catalog with what is local, plus stray GGUFs', async () => {
    const e2b = findCatalogEntry('gemma-3n-e2b-q4_k_m')!;
    writeFileSync(join(dir, e2b.model.fileName), '');
    truncateSync(join(dir, e2b.model.fileName), e2b.model.sizeBytes!); // sparse
    writeFileSync(
      join(dir, 'my-finetune.gguf'),
      metadataOnlyGguf([
        ['general.architecture', 'llama'],
        ['general.file_type', 7],
      ]),
    );

    const run = await model('list', '--dir', dir, '--context', '8192');

    expect(run.exitCode).toBeUndefined();
    const lines = run.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+LOCAL\s+SIZE\s+RAM@8192\s+INPUTS$/);
    expect(lines).toHaveLength(1 + CATALOG.length + 1);
    for (const entry of CATALOG) expect(run.out).toContain(entry.name);
    expect(lines.find((l) => l.startsWith('gemma-3n-e2b-q4_k_m'))).toMatch(
      /\syes\s+3\.03 GB\s+\S+ GB\s+text$/,
    );
    expect(lines.find((l) => l.startsWith('gemma-4-e2b-q4_k_m'))).toMatch(
      /\sno\s+3\.11 GB\s.*text\+image\+audio$/,
    );
    expect(lines.at(-1)).toMatch(/^my-finetune\.gguf\s+yes \(not in catalog\)/);
  });
});

describe('outpost model inspect', () => {
  it('prints the GGUF summary as JSON', async () => {
    const path = join(dir, 'tiny.gguf');
    writeFileSync(
      path,
      metadataOnlyGguf([
        ['general.architecture', 'gemma3n'],
        ['general.name', 'Tiny'],
        ['general.file_type', 15],
        ['gemma3n.context_length', 32768],
        ['gemma3n.block_count', 30],
      ]),
    );

    const run = await model('inspect', path, '--json');

    expect(run.exitCode).toBeUndefined();
    expect(JSON.parse(run.out)).toMatchObject({
      path,
      architecture: 'gemma3n',
      name: 'Tiny',
      fileType: 'Q4_K_M',
      contextLength: 32768,
      blockCount: 30,
      tensorCount: 0,
      isProjector: false,
      modalities: ['text'],
    });
  });

  it('prints readable lines without --json', async () => {
    const path = join(dir, 'tiny.gguf');
    writeFileSync(path, metadataOnlyGguf([['general.architecture', 'gemma4']]));

    const run = await model('inspect', path);

    expect(run.out).toMatch(/^architecture:\s+gemma4$/m);
    expect(run.out).toMatch(/^kind:\s+language model$/m);
  });

  it('exits 1 with one line for a file that is not GGUF', async () => {
    const path = join(dir, 'fake.gguf');
    writeFileSync(path, 'plain text');

    const run = await model('inspect', path, '--json');

    expect(run.exitCode).toBe(1);
    expect(run.out).toBe('');
    expect(run.err).toBe(`outpost: ${path}: not a GGUF file (starts with "plai", expected "GGUF")\n`);
  });
});

describe('outpost model pull', () => {
  it('exits 1 naming the catalog for an unknown model, without touching the network', async () => {
    const run = await model('pull', 'gemma-9-giant', '--dir', dir);

    expect(run.exitCode).toBe(1);
    expect(run.err).toContain('unknown model "gemma-9-giant"');
    expect(run.err).toContain('gemma-3n-e2b-q4_k_m');
    expect(run.err.trimEnd().split('\n')).toHaveLength(1);
  });
});
