import type { GenerateRequest, GenerateResult, ModelInfo, RuntimeLoadOptions } from '../runtime.js';

/**
 * The typed IPC between the daemon and the inference worker. Media travel as file paths, never through
 * the pipe. Every request carries an id its reply echoes.
 */
export type WorkerRequest =
  | { type: 'load'; id: number; options: RuntimeLoadOptions }
  | { type: 'generate'; id: number; request: Omit<GenerateRequest, 'signal'> }
  | { type: 'abort'; id: number; target: number }
  | { type: 'estimate'; id: number; paths: string[]; contextSizes: number[]; gpu: 'auto' | false }
  | { type: 'unload'; id: number }
  | { type: 'shutdown'; id: number };

export type WorkerReply =
  | { type: 'ready'; pid: number }
  | { type: 'loaded'; id: number; info: ModelInfo; rssBytes: number; loadMs: number }
  | { type: 'generated'; id: number; result: GenerateResult; rssBytes: number }
  | { type: 'estimated'; id: number; estimates: ModelEstimate[] }
  | { type: 'unloaded'; id: number; rssBytes: number }
  | { type: 'done'; id: number }
  | { type: 'failed'; id: number; error: { name: string; message: string; aborted: boolean } };

/** Resident bytes a model file needs at each context size (model + context), as llama.cpp estimates. */
export interface ModelEstimate {
  path: string;
  /** GGUF architecture, e.g. gemma3n */
  architecture: string;
  perContext: { contextSize: number; bytes: number }[];
}

/** The request types that expect a reply of their own, and the reply that answers each. */
export interface ReplyOf {
  load: Extract<WorkerReply, { type: 'loaded' }>;
  generate: Extract<WorkerReply, { type: 'generated' }>;
  unload: Extract<WorkerReply, { type: 'unloaded' }>;
  estimate: Extract<WorkerReply, { type: 'estimated' }>;
  shutdown: Extract<WorkerReply, { type: 'done' }>;
  abort: Extract<WorkerReply, { type: 'done' }>;
}
