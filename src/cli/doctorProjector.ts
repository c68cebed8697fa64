/**
 * `outpost doctor`'s projector check: model.mmproj is a projector, and its output width is the model's (what
 * the llama.node runtime checks before attaching one; the model is not loaded here, so its width comes from
 * the GGUF header). Without model.mmproj: a warning when the model comes with a projector left unused.
 */
import { createRequire } from 'node:module';
import { basename, join, resolve } from 'node:path';
import { type GgufSummary, inspectModel, ModelFileError } from '../inference/index.js';
import type { DoctorCheck } from './doctor.js';
import { firstLine } from './doctorChecks.js';
import { modelSetup, pullCommand, statSize } from './doctorModel.js';

const require = createRequire(import.meta.url);

export const projectorCheck: DoctorCheck = {
  id: 'projector',
  timeoutMs: 10_000,
  timeoutFix: 'reading the projector hangs: check the volume it is on (`ls -l` the file)',
  async run({ config }) {
    const { files, dir } = await modelSetup(config);
    const models = files.filter((f) => f.summary);
    if (!config.model.mmproj) {
      const paired = files.find((f) => f.entry?.mmproj);
      if (paired?.entry?.mmproj) {
        const path = join(dir, paired.entry.mmproj.fileName);
        return {
          status: 'warn',
          message: `${paired.id} takes images and audio with its projector, but model.mmproj is not set: text only`,
          fix: `set OUTPOST_MMPROJ=${path}${(await statSize(path)) === undefined ? ` after ${pullCommand(paired.id, dir)}` : ''}`,
        };
      }
      return { status: 'ok', message: 'none configured: the model serves text only' };
    }
    const path = resolve(config.model.mmproj);
    let summary: GgufSummary;
    try {
      summary = await inspectModel(path);
    } catch (error) {
      return {
        status: 'fail',
        message: `projector ${error instanceof ModelFileError ? error.message : firstLine(error)}`,
        fix: `copy the projector GGUF to ${path}, or set OUTPOST_MMPROJ to where it is`,
      };
    }
    if (!summary.isProjector) {
      return {
        status: 'fail',
        message: `${path} is not a projector (general.architecture ${summary.architecture}, not clip)`,
        fix: 'set OUTPOST_MMPROJ to the mmproj GGUF that comes with the model, not to the model itself',
      };
    }
    const encoders = summary.modalities.join('+') || 'no encoders';
    if (config.model.runtime === 'node-llama-cpp') {
      return {
        status: 'warn',
        message: `${basename(path)} (${encoders}) is not used: model.runtime is node-llama-cpp, which takes no images or audio`,
        fix: 'set model.runtime (OUTPOST_MODEL_RUNTIME) to auto or llama.node',
      };
    }
    // As the llama.node runtime checks before attaching: the projector's output width is the model's.
    let metadata: Record<string, unknown>;
    try {
      const llamaNode = require('@fugood/llama.node') as {
        loadLlamaModelInfo(path: string): Promise<Record<string, unknown>>;
      };
      metadata = await llamaNode.loadLlamaModelInfo(path);
    } catch (error) {
      return {
        status: 'warn',
        message: `${basename(path)} (${encoders}): widths not compared: ${firstLine(error)}`,
        fix: 'see the native.llama.node check',
      };
    }
    const widths = ['clip.vision.projection_dim', 'clip.audio.projection_dim']
      .map((key) => metadata[key])
      .filter((v) => v !== undefined)
      .map(Number);
    const mismatched = models.filter((m) =>
      widths.some((w) => m.summary?.embeddingLength !== undefined && w !== m.summary.embeddingLength),
    );
    if (mismatched.length > 0) {
      const m = mismatched[0]!;
      return {
        status: 'fail',
        message: `${basename(path)} gives ${widths.join('/')}-wide embeddings but ${m.id} expects ${m.summary?.embeddingLength}: they are not a pair`,
        fix: `set OUTPOST_MMPROJ to the projector made for ${m.id} (from the same repository as its GGUF)`,
        details: { projector: path, widths, model: m.path, modelWidth: m.summary?.embeddingLength },
      };
    }
    if (summary.modalities.length === 0) {
      return {
        status: 'warn',
        message: `${basename(path)} has neither a vision nor an audio encoder`,
        fix: 'set OUTPOST_MMPROJ to the projector with the encoders the model should use',
      };
    }
    const against =
      models.length > 0 ? `matches ${models.map((m) => m.id).join(', ')}` : 'no model to compare';
    return { status: 'ok', message: `${basename(path)} (${encoders}) ${against}` };
  },
};
