/**
 * The runtime port: what the worker needs of an inference runtime. node-llama-cpp implements it for text;
 * the image/audio runtime (@fugood/llama.node, libmtmd) implements the same port.
 */

/** A JSON schema in the subset llama.cpp grammars take (object/array/string/number/boolean/enum). */
export type JsonSchema = Readonly<Record<string, unknown>>;

/** The runtimes the worker can hold (one at a time). */
export type RuntimeName = 'node-llama-cpp' | 'llama.node';

/**
 * Where a media item goes in a prompt: one marker per item of {@link GenerateRequest.media}, in order.
 * It is libmtmd's default marker; an adapter whose runtime uses another one translates it.
 */
export const MEDIA_MARKER = '<__media__>';

/** An image or audio file passed to the model with a prompt. Media travel as paths, never as bytes. */
export interface MediaInput {
  kind: 'image' | 'audio';
  /** file path (JPEG/PNG for images, WAV for audio) */
  path: string;
}

export interface RuntimeLoadOptions {
  /** which runtime loads the model; the worker unloads any other first */
  runtime: RuntimeName;
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
  /**
   * Why a configured projector is not in use (missing file, width mismatch with the model, failed init):
   * the model still serves text, and media jobs wait with this reason.
   */
  projectorError?: string | undefined;
}

export interface RuntimeCapabilities {
  text: true;
  image: boolean;
  audio: boolean;
}

export interface GenerateRequest {
  /** the whole prompt, chat turns included; one {@link MEDIA_MARKER} per media item */
  prompt: string;
  /** images/audio for the markers in `prompt`; a runtime without the capability throws CapabilityError */
  media?: readonly MediaInput[] | undefined;
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

/** The resident model cannot take a media kind a request carries (no projector, or the wrong one). */
export class CapabilityError extends Error {
  override readonly name = 'CapabilityError';
  constructor(
    readonly capability: 'image' | 'audio',
    message: string,
  ) {
    super(message);
  }
}
