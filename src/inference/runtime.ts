/**
 * The runtime port: what the worker needs of an inference runtime. node-llama-cpp implements it for text;
 * the image/audio runtime (@fugood/llama.node, libmtmd) implements the same port.
 */

/** A JSON schema in the subset llama.cpp grammars take (object/array/string/number/boolean/enum). */
export type JsonSchema = Readonly<Record<string, unknown>>;

export interface RuntimeLoadOptions {
  /** GGUF file of the model */
  modelPath: string;
  /** projector GGUF for images/audio, when the runtime takes media */
  mmprojPath?: string | undefined;
  /** tokens */
  contextSize: number;
  /** llama.cpp threads: set from the physical cores, the runtime default oversubscribes small boards */
  threads: number;
  /** 'auto': a GPU build when one works; false: CPU only */
  gpu: 'auto' | false;
}

export interface ModelInfo {
  /** file name of the model */
  model: string;
  /** the runtime's own name, e.g. node-llama-cpp */
  runtime: string;
  /** 'cuda', 'vulkan', 'metal' or false (CPU) */
  gpu: string | false;
  contextSize: number;
  /** GGUF architecture, e.g. gemma3n */
  architecture: string;
  capabilities: RuntimeCapabilities;
}

export interface RuntimeCapabilities {
  text: true;
  image: boolean;
  audio: boolean;
}

export interface GenerateRequest {
  prompt: string;
  /** constrains generation to JSON of this schema */
  schema?: JsonSchema | undefined;
  maxTokens: number;
  /** 0 (default) picks the most likely token each step */
  temperature?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface GenerateResult {
  text: string;
  /** tokens generated */
  tokens: number;
  /** tokens of the prompt */
  promptTokens: number;
  /** time spent generating, as the runtime measured it, ms */
  generationMs: number;
  stopReason: 'end' | 'maxTokens' | 'abort' | 'stop';
}

export interface Runtime {
  readonly name: string;
  load(options: RuntimeLoadOptions): Promise<ModelInfo>;
  generate(request: GenerateRequest): Promise<GenerateResult>;
  /** Frees the model; safe to call twice. */
  unload(): Promise<void>;
}
