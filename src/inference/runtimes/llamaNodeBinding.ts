import { createRequire } from 'node:module';
import type * as LlamaNodeApi from './llamaNodeApi.js';

export type * from './llamaNodeApi.js';

/**
 * @fugood/llama.node (CommonJS), loaded with require() and typed by `llamaNodeApi.d.ts`. Importing the
 * package by name would make TypeScript compile its shipped .ts sources; this module is the one place
 * that loads it, and only the llama.node runtime (in the worker) and its tests import this module.
 */
export const llamaNode = createRequire(import.meta.url)('@fugood/llama.node') as typeof LlamaNodeApi;
