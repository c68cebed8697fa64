import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeTinyGemma3n } from '../fixtures/gguf/gemma3n.js';

/** Two tiny generated gemma3n files (node-llama-cpp loads them; they write nonsense fast). */
export async function writeTinyModels(prefix = 'outpost-models-'): Promise<{ small: string; large: string }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return {
    small: (await writeTinyGemma3n(join(dir, 'tiny-small.gguf'), { size: 'small' })).path,
    large: (await writeTinyGemma3n(join(dir, 'tiny-large.gguf'), { size: 'large' })).path,
  };
}

/** Settings for fast model jobs: small context, no digests, quick retries, anomalies without cooldown. */
export const modelEnv = (env: Record<string, string> = {}): Record<string, string> => ({
  OUTPOST_MODEL_CONTEXT_SIZES: '[256]',
  OUTPOST_MODEL_THREADS: '1',
  OUTPOST_MODEL_RESERVE: '0',
  OUTPOST_MODEL_UP_HOLD: '0.3',
  OUTPOST_INFERENCE_MODEL_RETRY: '0.2',
  OUTPOST_INFERENCE_DIGEST_INTERVAL: '0',
  OUTPOST_SENSORS_ANOMALY_COOLDOWN: '0.001',
  ...env,
});
