import { basename } from 'node:path';
import {
  getLlama,
  type Llama,
  LlamaCompletion,
  type LlamaContext,
  type LlamaContextSequence,
  type LlamaGrammar,
  LlamaLogLevel,
  type LlamaModel,
} from 'node-llama-cpp';
import {
  CapabilityError,
  type GenerateRequest,
  type GenerateResult,
  type JsonSchema,
  type ModelInfo,
  type Runtime,
  type RuntimeLoadOptions,
} from '../runtime.js';

type JsonSchemaArgument = Parameters<Llama['createGrammarForJsonSchema']>[0];

/**
 * Text runtime over node-llama-cpp (llama.cpp). It takes no images or audio: the llama.node runtime does.
 * An aborted generation rejects with the signal's reason, like every runtime.
 */
export class NodeLlamaCppRuntime implements Runtime {
  readonly name = 'node-llama-cpp';
  #llama: Llama | undefined;
  #gpu: 'auto' | false | undefined;
  #model: LlamaModel | undefined;
  #context: LlamaContext | undefined;
  #completion: LlamaCompletion | undefined;
  #sequence: LlamaContextSequence | undefined;
  #options: RuntimeLoadOptions | undefined;
  readonly #grammars = new Map<string, LlamaGrammar>();
  /**
   * Aborts the generations in flight when the model goes: node-llama-cpp throws an uncaught DisposedError
   * when a sequence is disposed under a running generation, so unload() stops them and waits first.
   */
  #unloading = new AbortController();
  readonly #generations = new Set<Promise<unknown>>();

  async load(options: RuntimeLoadOptions): Promise<ModelInfo> {
    await this.unload();
    if (!this.#llama || this.#gpu !== options.gpu) {
      await this.#llama?.dispose();
      // build 'never': a board must not try to compile llama.cpp; the prebuilt binaries (CUDA on Jetson) apply.
      this.#llama = await getLlama({ build: 'never', gpu: options.gpu, logLevel: LlamaLogLevel.error });
      this.#gpu = options.gpu;
    }
    this.#model = await this.#llama.loadModel({ modelPath: options.modelPath });
    this.#options = options;
    await this.#newContext();
    return {
      model: basename(options.modelPath),
      runtime: this.name,
      gpu: this.#llama.gpu,
      contextSize: this.#context!.contextSize,
      architecture: String(this.#model.fileInfo.metadata.general.architecture),
      capabilities: { text: true, image: false, audio: false },
    };
  }

  generate(request: GenerateRequest): Promise<GenerateResult> {
    const generation = this.#generate(request);
    const settled = generation.then(
      () => undefined,
      () => undefined,
    );
    this.#generations.add(settled);
    void settled.then(() => this.#generations.delete(settled));
    return generation;
  }

  async #generate(request: GenerateRequest): Promise<GenerateResult> {
    const model = this.#model;
    const completion = this.#completion;
    if (!model || !completion || !this.#sequence) throw new Error('no model loaded');
    const [media] = request.media ?? [];
    if (media) {
      throw new CapabilityError(
        media.kind,
        `the node-llama-cpp runtime takes no ${media.kind}: set model.mmproj (OUTPOST_MMPROJ) to a projector ` +
          'for the model; with model.runtime auto that selects the llama.node runtime, which does',
      );
    }
    request.signal?.throwIfAborted();
    const unloading = this.#unloading.signal;
    const signal = request.signal ? AbortSignal.any([request.signal, unloading]) : unloading;
    const grammar = request.schema ? await this.#grammar(request.schema) : undefined;
    const promptTokens = model.tokenize(request.prompt, true).length;
    // Each job starts from an empty sequence: no job sees another's prompt.
    await this.#sequence.clearHistory();
    let tokens = 0;
    const started = performance.now();
    try {
      const { response, metadata } = await completion.generateCompletionWithMeta(request.prompt, {
        grammar,
        maxTokens: request.maxTokens,
        temperature: request.temperature ?? 0,
        signal,
        onToken: (chunk) => {
          tokens += chunk.length;
        },
      });
      const stopReason =
        metadata.stopReason === 'eogToken' || metadata.stopReason === 'stopGenerationTrigger'
          ? 'end'
          : metadata.stopReason === 'maxTokens'
            ? 'maxTokens'
            : metadata.stopReason === 'abort'
              ? 'abort'
              : 'stop';
      return { text: response, tokens, promptTokens, generationMs: performance.now() - started, stopReason };
    } catch (error) {
      // A failed or aborted generation can leave the context unusable: the next job gets a new one,
      // unless the model is going anyway.
      if (!unloading.aborted) await this.#newContext();
      throw error;
    }
  }

  async unload(): Promise<void> {
    this.#unloading.abort(new Error('the model was unloaded during generation'));
    this.#unloading = new AbortController();
    await Promise.all(this.#generations);
    this.#completion?.dispose({ disposeSequence: true });
    this.#completion = undefined;
    this.#sequence = undefined;
    await this.#context?.dispose();
    this.#context = undefined;
    this.#grammars.clear();
    await this.#model?.dispose();
    this.#model = undefined;
  }

  async #newContext() {
    this.#completion?.dispose({ disposeSequence: true });
    await this.#context?.dispose();
    const o = this.#options!;
    this.#context = await this.#model!.createContext({ contextSize: o.contextSize, threads: o.threads });
    this.#sequence = this.#context.getSequence();
    this.#completion = new LlamaCompletion({ contextSequence: this.#sequence });
  }

  async #grammar(schema: JsonSchema): Promise<LlamaGrammar> {
    const key = JSON.stringify(schema);
    let grammar = this.#grammars.get(key);
    if (!grammar) {
      grammar = await this.#llama!.createGrammarForJsonSchema(schema as JsonSchemaArgument);
      this.#grammars.set(key, grammar);
    }
    return grammar;
  }
}
