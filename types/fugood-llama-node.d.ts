/**
 * The part of @fugood/llama.node 1.7.15 that Outpost uses, typed here: the package ships TypeScript
 * sources (lib/*.ts, CommonJS) instead of declarations, and compiling those under this project's
 * settings fails. tsconfig's `paths` points the package name at this file for type checking only; at run
 * time Node loads the package itself. Keep in step with node_modules/@fugood/llama.node/lib/index.ts.
 */

export interface LlamaModelOptions {
  /** GGUF path */
  model: string;
  n_ctx?: number;
  n_batch?: number;
  n_threads?: number;
  n_gpu_layers?: number;
  [option: string]: unknown;
}

export interface LlamaCompletionOptions {
  prompt?: string;
  messages?: unknown[];
  /** file paths or data: URLs, one per `<__media__>` marker in the prompt */
  media_paths?: string[];
  n_predict?: number;
  temperature?: number;
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
  tokens_predicted: number;
  /** prompt tokens (image tokens included) plus predicted tokens */
  tokens_evaluated: number;
  context_full?: boolean;
  truncated?: boolean;
  interrupted?: boolean;
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
  getModelInfo(): { nEmbd: number; [field: string]: unknown };
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
