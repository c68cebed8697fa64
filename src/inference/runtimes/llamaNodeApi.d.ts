/**
 * The part of @fugood/llama.node 1.7.15 that Outpost uses, typed here: the package ships TypeScript
 * sources (lib/*.ts, CommonJS) instead of declarations, and compiling those under this project's settings
 * fails. So nothing imports the package by name for its types: `llamaNodeBinding.ts` loads it with
 * require() and gives it these types. Keep in step with node_modules/@fugood/llama.node/lib/index.ts.
 */

export interface LlamaModelOptions {
  /** GGUF path */
  model: string;
  n_ctx?: number;
  /** largest batch of tokens one decode call takes; llama.cpp caps it at the n_ctx asked for */
  n_batch?: number;
  /** physical batch (default 512); a non-causal media chunk larger than it aborts the process */
  n_ubatch?: number;
  n_threads?: number;
  n_gpu_layers?: number;
  /** shift the context when it fills (default true; initMultimodal turns it off) */
  ctx_shift?: boolean;
  [option: string]: unknown;
}

export interface LlamaCompletionOptions {
  prompt?: string;
  messages?: unknown[];
  /** file paths or data: URLs, one per `<__media__>` marker in the prompt */
  media_paths?: string[];
  n_predict?: number;
  /** default 0.8; 0 alone still samples at random in 1.7.15: add top_k 1 for greedy decoding */
  temperature?: number;
  /** default 40 */
  top_k?: number;
  seed?: number;
  ignore_eos?: boolean;
  grammar?: string;
  response_format?:
    | { type: 'json_schema'; json_schema: { schema: unknown } }
    | { type: 'json_object'; schema?: unknown };
  [option: string]: unknown;
}

export interface LlamaCompletionResult {
  text: string;
  /**
   * tokens generated, except that the first one is left out when it came in the same decode step as the
   * prompt's last batch (rn-llama counts only tokens decoded on their own); exact when n_predict was reached
   */
  tokens_predicted: number;
  /** prompt tokens (image tokens included) plus predicted tokens */
  tokens_evaluated: number;
  context_full?: boolean;
  truncated?: boolean;
  /** stopCompletion() (or release()) ended it */
  interrupted?: boolean;
  stopped_eos?: boolean;
  /** n_predict reached */
  stopped_limited?: boolean;
  stopped_words?: boolean;
  timings?: Record<string, number>;
  [field: string]: unknown;
}

export interface TokenizeResult {
  /** -1 for each media token */
  tokens: number[];
  has_media: boolean;
  chunk_pos?: number[];
  chunk_pos_media?: number[];
  [field: string]: unknown;
}

export interface LlamaContext {
  getModelInfo(): { nEmbd: number; metadata: Record<string, string>; [field: string]: unknown };
  /** names of the GPU devices the model is offloaded to (e.g. CUDA0); empty on the CPU */
  getUsedDevices(): string[];
  initMultimodal(options: {
    path: string;
    use_gpu?: boolean;
    image_min_tokens?: number;
    image_max_tokens?: number;
  }): boolean;
  isMultimodalEnabled(): boolean;
  releaseMultimodal(): void;
  getMultimodalSupport(): { vision: boolean; audio: boolean };
  completion(
    options: LlamaCompletionOptions,
    callback?: (token: unknown) => void,
  ): Promise<LlamaCompletionResult>;
  stopCompletion(): void;
  /** empties the KV cache, so the next prompt is read from its start; throws while a completion runs */
  clearCache(clearData?: boolean): void;
  tokenize(text: string, options?: { media_paths?: string[] }): Promise<TokenizeResult>;
  detokenize(tokens: number[]): Promise<string>;
  release(): Promise<void>;
}

export function loadModel(
  options: LlamaModelOptions,
  onProgress?: (progress: number) => void,
): Promise<LlamaContext>;
export function loadLlamaModelInfo(path: string): Promise<Record<string, unknown>>;
export function toggleNativeLog(enable: boolean): Promise<void>;
