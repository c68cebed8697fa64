import { basename } from 'node:path';
import { grammarSchemaProblem } from '../../common/index.js';
import { ModelFileError } from '../errors.js';
import { inspectModel } from '../modelFiles.js';
import {
  CapabilityError,
  type GenerateRequest,
  type GenerateResult,
  MEDIA_MARKER,
  type MediaInput,
  type ModelInfo,
  type Runtime,
  type RuntimeLoadOptions,
} from '../runtime.js';
import { validationSchema } from '../tasks.js';
import {
  type LlamaCompletionOptions,
  type LlamaCompletionResult,
  type LlamaContext,
  llamaNode,
} from './llamaNodeBinding.js';

/**
 * Tokens per decode call, at most. n_ubatch is set to the same value and n_batch never exceeds n_ctx,
 * because llama.node aborts the whole process (GGML_ASSERT in llama_decode) when a batch it builds is larger
 * than the n_batch llama.cpp kept (llama.cpp caps n_batch at the requested n_ctx) or when a non-causal
 * image chunk is larger than n_ubatch. 512 is also node-llama-cpp's default batch, which the memory
 * planner's estimates assume.
 */
const MAX_BATCH = 512;

/** What the resident model was loaded with and can take. */
interface Resident {
  options: RuntimeLoadOptions;
  info: ModelInfo;
  /** n_batch, tokens */
  batch: number;
}

/**
 * Text, image and audio runtime over @fugood/llama.node (llama.cpp with libmtmd). Several llama.node
 * failures end the process instead of throwing (a missing model file, a prompt past the batch, a schema
 * llama.cpp cannot convert), so each is checked here first and turned into an Error.
 */
export class LlamaNodeRuntime implements Runtime {
  readonly name = 'llama.node';
  #context: LlamaContext | undefined;
  #resident: Resident | undefined;
  /** a native completion is running: only then may stopCompletion() be called (see #complete) */
  #completing = false;
  /** load() or unload() waits for the model: generations queued ahead of it reject instead of starting */
  #stopping = false;
  /** one native call at a time: a second completion on a busy context fails and spoils the context */
  #queue: Promise<unknown> = Promise.resolve();

  /** Stops a running generation (it rejects), then loads; a model already loaded goes first. */
  load(options: RuntimeLoadOptions): Promise<ModelInfo> {
    this.#stopGenerations();
    return this.#exclusive(() => {
      this.#stopping = false;
      return this.#load(options);
    });
  }

  generate(request: GenerateRequest): Promise<GenerateResult> {
    return this.#exclusive(() => this.#generate(request));
  }

  /** Stops a running generation (it rejects) and frees the model; safe to call twice. */
  async unload(): Promise<void> {
    this.#stopGenerations();
    await this.#exclusive(async () => {
      await this.#release();
      this.#stopping = false;
    });
  }

  #stopGenerations(): void {
    this.#stopping = true;
    if (this.#completing) this.#context?.stopCompletion();
  }

  async #load(options: RuntimeLoadOptions): Promise<ModelInfo> {
    await this.#release();
    // llama.node dereferences a null model when loading fails: the process dies with SIGSEGV, so a missing
    // or foreign file must be caught before it gets there.
    const summary = await inspectModel(options.modelPath);
    if (summary.isProjector) {
      throw new ModelFileError(summary.path, 'is a projector, not a language model: name it in model.mmproj');
    }
    if (!(summary.tensorCount > 0)) throw new ModelFileError(summary.path, 'has no tensors (truncated?)');
    const batch = Math.min(options.contextSize, MAX_BATCH);
    const context = await llamaNode.loadModel({
      model: options.modelPath,
      n_ctx: options.contextSize,
      n_batch: batch,
      n_ubatch: batch,
      n_threads: options.threads,
      n_gpu_layers: options.gpu === 'auto' ? 99 : 0,
      // generate() keeps prompt + answer inside the context; a projector turns shifting off anyway
      ctx_shift: false,
    });
    this.#context = context;
    const projectorError = options.mmprojPath
      ? await attachProjector(context, options.modelPath, options.mmprojPath, options.gpu === 'auto')
      : undefined;
    const support = options.mmprojPath && !projectorError ? context.getMultimodalSupport() : undefined;
    const info: ModelInfo = {
      model: basename(options.modelPath),
      runtime: this.name,
      gpu: gpuBackend(context.getUsedDevices()),
      contextSize: options.contextSize,
      architecture: summary.architecture,
      capabilities: { text: true, image: support?.vision ?? false, audio: support?.audio ?? false },
      projectorError,
    };
    this.#resident = { options, info, batch };
    return info;
  }

  async #generate(request: GenerateRequest): Promise<GenerateResult> {
    const context = this.#context;
    const resident = this.#resident;
    if (!context || !resident) throw new Error('no model loaded');
    request.signal?.throwIfAborted();
    const media = request.media ?? [];
    for (const item of media) {
      if (!resident.info.capabilities[item.kind]) {
        throw new CapabilityError(item.kind, missingCapability(item, resident));
      }
    }
    const markers = request.prompt.split(MEDIA_MARKER).length - 1;
    if (markers !== media.length) {
      throw new Error(
        `the prompt has ${markers} ${MEDIA_MARKER} markers for ${media.length} media items: put one marker per item`,
      );
    }
    const schemaError = request.schema && grammarSchemaProblem(request.schema);
    if (schemaError) throw new Error(`llama.cpp cannot turn the JSON schema into a grammar: ${schemaError}`);

    const mediaPaths = media.map((item) => item.path);
    const promptTokens = await this.#countTokens(context, request.prompt, mediaPaths);
    const contextSize = resident.options.contextSize;
    const room = contextSize - promptTokens;
    if (room < 1) {
      throw new Error(
        `the prompt needs ${promptTokens} tokens (media included) but the context holds ${contextSize}: ` +
          'shorten the prompt or give the model a larger context',
      );
    }
    request.signal?.throwIfAborted();
    if (this.#stopping) throw new Error('the model was unloaded before the generation started');

    const nPredict = Math.min(request.maxTokens, room);
    const temperature = request.temperature ?? 0;
    // Each job reads its prompt from the start, as with node-llama-cpp: no job sees another's prompt, and
    // the token count below depends on it.
    context.clearCache();
    const started = performance.now();
    let result: LlamaCompletionResult;
    try {
      result = await this.#complete(
        context,
        {
          prompt: request.prompt,
          ...(media.length > 0 ? { media_paths: mediaPaths } : {}),
          n_predict: nPredict,
          temperature,
          // temperature 0 alone still samples at random (seen with 1.7.15); top_k 1 makes it greedy
          ...(temperature === 0 ? { top_k: 1 } : {}),
          ...(request.schema
            ? {
                response_format: {
                  type: 'json_schema',
                  json_schema: { schema: validationSchema(request.schema) },
                },
              }
            : {}),
        },
        request.signal,
      );
    } catch (error) {
      // A failed completion leaves the native context marked busy ("Another completion is in progress")
      // for good: load it again for the next job.
      await this.#reload();
      throw error;
    }
    const generationMs = performance.now() - started;
    if (result.interrupted) {
      throw request.signal?.aborted
        ? request.signal.reason
        : new Error('the model was unloaded during generation');
    }
    if (result.context_full) {
      await this.#reload();
      throw new Error(`the context (${contextSize} tokens) filled up before the prompt was read`);
    }
    const promptTokensRead = result.tokens_evaluated - result.tokens_predicted;
    const limited = result.stopped_limited === true;
    return {
      text: result.text,
      tokens: limited
        ? nPredict
        : result.tokens_predicted + uncountedFirstToken(result, promptTokensRead, resident.batch, media),
      promptTokens: promptTokensRead,
      generationMs,
      stopReason: limited ? 'maxTokens' : 'end',
    };
  }

  /** Prompt tokens, media tokens included, plus one for the BOS token tokenize() leaves out of text. */
  async #countTokens(context: LlamaContext, prompt: string, mediaPaths: string[]): Promise<number> {
    if (mediaPaths.length === 0) return (await context.tokenize(prompt)).tokens.length + 1;
    try {
      return (await context.tokenize(prompt, { media_paths: mediaPaths })).tokens.length + 1;
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      throw new Error(`cannot read the media of the prompt (${mediaPaths.join(', ')}): ${detail}`);
    }
  }

  /** One native completion; an abort of `signal` stops it, and it then resolves with `interrupted`. */
  async #complete(
    context: LlamaContext,
    options: LlamaCompletionOptions,
    signal: AbortSignal | undefined,
  ): Promise<LlamaCompletionResult> {
    // stopCompletion() on a context whose last completion failed touches freed memory in llama.node
    // 1.7.15 (the failed worker stays registered): only call it while a completion is running.
    const stop = () => {
      if (this.#completing) context.stopCompletion();
    };
    this.#completing = true;
    signal?.addEventListener('abort', stop, { once: true });
    try {
      return await context.completion(options);
    } finally {
      this.#completing = false;
      signal?.removeEventListener('abort', stop);
    }
  }

  async #reload(): Promise<void> {
    const options = this.#resident?.options;
    await this.#release();
    if (!options || this.#stopping) return;
    try {
      await this.#load(options);
    } catch {
      // The file went away or broke since the first load: the model stays unloaded and the next
      // generate() says so; the caller gets the error of the generation that failed.
    }
  }

  async #release(): Promise<void> {
    const context = this.#context;
    this.#context = undefined;
    this.#resident = undefined;
    await context?.release();
  }

  #exclusive<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/**
 * 1 when tokens_predicted left out the answer's first token, else 0. rn-llama counts a token only when it
 * was decoded on its own, so the first one is missed when the text prompt's last batch had more than one
 * token (the prompt always starts cold here: see clearCache); libmtmd reads a media prompt beforehand, so
 * there it counts right. An empty text means the first token ended the answer: nothing to add.
 */
function uncountedFirstToken(
  result: LlamaCompletionResult,
  promptTokens: number,
  batch: number,
  media: readonly MediaInput[],
): 0 | 1 {
  const lastBatch = ((promptTokens - 1) % batch) + 1;
  return media.length === 0 && result.text !== '' && lastBatch > 1 ? 1 : 0;
}

/**
 * Checks a projector against the loaded model and attaches it; returns why it is not in use, or
 * undefined. libmtmd's own reasons go only to stderr and initMultimodal() throws a generic error, so the
 * usual causes are looked for first.
 */
async function attachProjector(
  context: LlamaContext,
  modelPath: string,
  mmprojPath: string,
  gpu: boolean,
): Promise<string | undefined> {
  const model = basename(modelPath);
  const projector = basename(mmprojPath);
  let summary: Awaited<ReturnType<typeof inspectModel>>;
  try {
    summary = await inspectModel(mmprojPath);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return `projector ${detail}; ${model} serves text only`;
  }
  if (!summary.isProjector) {
    return `projector ${summary.path} is not a projector (general.architecture ${summary.architecture}, not clip); ${model} serves text only`;
  }
  const width = context.getModelInfo().nEmbd;
  const metadata = await llamaNode.loadLlamaModelInfo(mmprojPath);
  for (const key of ['clip.vision.projection_dim', 'clip.audio.projection_dim']) {
    const projected = metadata[key];
    if (projected !== undefined && Number(projected) !== width) {
      return `projector ${projector} gives ${projected}-wide embeddings but ${model} expects ${width}: they are not a pair`;
    }
  }
  try {
    if (context.initMultimodal({ path: mmprojPath, use_gpu: gpu })) return undefined;
  } catch {
    // the cause is on stderr; the message below says where to look
  }
  return `projector ${projector} failed to initialize with ${model} (libmtmd wrote the cause to stderr)`;
}

function missingCapability(item: MediaInput, resident: Resident): string {
  const { options, info } = resident;
  const encoder = item.kind === 'image' ? 'a vision' : 'an audio';
  if (!options.mmprojPath) {
    return (
      `${info.model} has no projector, so it takes no ${item.kind}: set model.mmproj (OUTPOST_MMPROJ) ` +
      `to ${encoder} projector GGUF made for it`
    );
  }
  if (info.projectorError) return `the projector is not in use, so no ${item.kind}: ${info.projectorError}`;
  return (
    `projector ${basename(options.mmprojPath)} has no ${item.kind} encoder: set model.mmproj ` +
    `(OUTPOST_MMPROJ) to ${encoder} projector for ${info.model}`
  );
}

/** 'cuda', 'vulkan' or 'metal' from the names of the devices llama.cpp offloads to (CUDA0, Vulkan0, MTL0). */
function gpuBackend(devices: readonly string[]): string | false {
  const names = devices.join(' ').toLowerCase();
  if (names.includes('cuda')) return 'cuda';
  if (names.includes('vulkan')) return 'vulkan';
  if (names.includes('mtl') || names.includes('metal')) return 'metal';
  return false;
}
