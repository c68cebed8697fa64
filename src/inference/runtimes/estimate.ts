import { GgufInsights, getLlama, LlamaLogLevel, readGgufFileInfo } from 'node-llama-cpp';
import type { ModelEstimate } from '../worker/protocol.js';

/**
 * Estimates what each model file needs resident (CPU RAM plus, where a GPU takes layers, VRAM) at each
 * context size, from its GGUF header with node-llama-cpp's GgufInsights, without loading it. Runs in
 * the worker so the daemon never loads llama.cpp itself.
 */
export async function estimateModels(
  paths: readonly string[],
  contextSizes: readonly number[],
  gpu: 'auto' | false,
): Promise<ModelEstimate[]> {
  const llama = await getLlama({ build: 'never', gpu, logLevel: LlamaLogLevel.error });
  const estimates: ModelEstimate[] = [];
  for (const path of paths) {
    const info = await readGgufFileInfo(path);
    const insights = await GgufInsights.from(info, llama);
    const model = insights.estimateModelResourceRequirements({ gpuLayers: 0 });
    estimates.push({
      path,
      architecture: String(info.metadata.general.architecture),
      perContext: contextSizes.map((contextSize) => {
        const context = insights.estimateContextResourceRequirements({ contextSize, modelGpuLayers: 0 });
        return { contextSize, bytes: model.cpuRam + model.gpuVram + context.cpuRam + context.gpuVram };
      }),
    });
  }
  return estimates;
}
