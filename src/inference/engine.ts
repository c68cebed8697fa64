import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { Clock, Logger } from '../common/index.js';
import type { MemoryGovernor } from './governor/governor.js';
import type { Decision, VariantOption } from './governor/planner.js';
import type { GenerateRequest, GenerateResult, ModelInfo, RuntimeName } from './runtime.js';
import type { ModelEstimate, ReplyOf } from './worker/protocol.js';
import type { WorkerSupervisor } from './worker/supervisor.js';

/** One model the governor may hold: a file (and projector), ranked by size. */
export interface ModelVariant {
  /** catalog name, or the file name for a plain path */
  id: string;
  path: string;
  mmproj?: string | undefined;
}

export type EngineState = 'no-model' | 'over-budget' | 'loading' | 'load-failed' | 'ready' | 'idle';

export interface InferenceEngineOptions {
  supervisor: WorkerSupervisor;
  governor: (variants: () => VariantOption[]) => MemoryGovernor;
  /** Largest first is not required: they are ranked by estimated size. */
  variants: readonly ModelVariant[];
  contextSizes: readonly number[];
  /** auto: llama.node (libmtmd) when the variant's projector is there, else node-llama-cpp */
  runtime: 'auto' | RuntimeName;
  threads: number;
  gpu: 'auto' | false;
  /** Shown while no model file is there: how to get one. */
  missingHint: string;
  logger: Logger;
  clock: Clock;
}

export interface Generation {
  result: GenerateResult;
  info: ModelInfo;
  variant: string;
}

/**
 * The one resident model: which file and context the worker holds, decided by the memory governor between
 * jobs, loaded through the supervised worker. Missing files are looked for again before each job, so a
 * model copied in (or pulled) later is picked up without a restart.
 */
export class InferenceEngine {
  readonly #o: InferenceEngineOptions;
  readonly #governor: MemoryGovernor;
  #estimates = new Map<string, ModelEstimate>();
  #current:
    | {
        variant: ModelVariant;
        contextSize: number;
        info: ModelInfo;
        estimatedBytes: number;
        /** whether the projector file was there at load: one that appears later triggers a reload */
        projectorPresent: boolean;
      }
    | undefined;
  #state: EngineState = 'idle';
  #reason = '';
  #lastDecision: Decision | undefined;

  constructor(options: InferenceEngineOptions) {
    this.#o = options;
    this.#governor = options.governor(() => this.#variantOptions());
    // The worker died: whatever it held is gone; after an OOM kill the governor steps down.
    options.supervisor.on('exit', (exit) => {
      const current = this.#current;
      this.#current = undefined;
      if (current && exit.oomLikely) this.#governor.recordKilled(current.variant.id, current.contextSize);
      else this.#governor.recordUnloaded();
      if (!exit.expected) this.#state = 'idle';
    });
  }

  get state(): EngineState {
    return this.#state;
  }

  /** Why no model is resident, when none is. */
  get reason(): string {
    return this.#reason;
  }

  /** The resident variant's id, if any. */
  get variant(): string | null {
    return this.#current?.variant.id ?? null;
  }

  /** What the resident model takes besides text; nothing while none is resident. */
  get capabilities(): { image: boolean; audio: boolean } {
    const c = this.#current?.info.capabilities;
    return { image: c?.image ?? false, audio: c?.audio ?? false };
  }

  /** Why the resident model's projector is not in use, when one is configured. */
  get projectorError(): string | undefined {
    return this.#current?.info.projectorError;
  }

  /**
   * Between jobs: applies the governor's decision. Resolves true when a model is resident afterwards;
   * false with `reason` set (no file, nothing fits the budget).
   */
  async prepare(signal?: AbortSignal): Promise<boolean> {
    await this.#refreshEstimates();
    if (this.#estimates.size === 0) {
      await this.#unload();
      return this.#set('no-model', this.#o.missingHint);
    }
    const decision = this.#governor.decide();
    this.#lastDecision = decision;
    const current = this.#current;
    if (decision.action === 'unload') {
      await this.#unload();
      return this.#set('over-budget', decision.reason);
    }
    // A projector copied in after the load: the same model and context again, now with it.
    const reload = current && this.#projectorAppeared(current.variant, current.projectorPresent);
    const target =
      decision.action === 'keep' && current && reload
        ? {
            id: current.variant.id,
            contextSize: current.contextSize,
            // the estimate now counts the projector
            estimatedBytes:
              this.#variantOptions()
                .find((v) => v.id === current.variant.id)
                ?.estimates.find((e) => e.contextSize === current.contextSize)?.bytes ??
              current.estimatedBytes,
          }
        : decision.target;
    if ((decision.action === 'keep' && !reload) || !target) {
      return current ? this.#set('ready', '') : this.#set('over-budget', decision.reason);
    }
    if (
      current &&
      current.variant.id === target.id &&
      current.contextSize === target.contextSize &&
      !reload
    ) {
      return this.#set('ready', '');
    }
    const variant = this.#o.variants.find((v) => v.id === target.id)!;
    signal?.throwIfAborted();
    this.#state = 'loading';
    const { supervisor, logger } = this.#o;
    const choice = this.#runtimeFor(variant);
    // One resident model: the worker unloads the old one (and drops its runtime) before loading.
    let reply: ReplyOf['load'];
    try {
      reply = await supervisor.request({
        type: 'load',
        options: {
          runtime: choice.runtime,
          modelPath: variant.path,
          mmprojPath: choice.mmproj,
          contextSize: target.contextSize,
          threads: this.#o.threads,
          gpu: this.#o.gpu,
        },
      });
    } catch (error) {
      // Nothing is resident now, whatever the governor planned; the next prepare() tries again.
      this.#current = undefined;
      this.#governor.recordUnloaded();
      this.#set('load-failed', `loading ${variant.id} failed: ${(error as Error).message}`);
      return false;
    }
    const info = { ...reply.info, projectorError: reply.info.projectorError ?? choice.projectorError };
    this.#current = {
      variant,
      contextSize: target.contextSize,
      info,
      estimatedBytes: target.estimatedBytes,
      projectorPresent: variant.mmproj !== undefined && existsSync(variant.mmproj),
    };
    if (info.projectorError)
      logger.warn({ reason: info.projectorError }, 'model loaded without its projector');
    this.#governor.recordLoaded(variant.id, target.contextSize, target.estimatedBytes, reply.rssBytes);
    logger.info(
      {
        variant: variant.id,
        contextSize: target.contextSize,
        estimatedBytes: target.estimatedBytes,
        workerRssBytes: reply.rssBytes,
        loadMs: Math.round(reply.loadMs),
        gpu: reply.info.gpu,
        runtime: reply.info.runtime,
        capabilities: reply.info.capabilities,
      },
      'model loaded',
    );
    return this.#set('ready', '');
  }

  /** Generates with the resident model; call after prepare() resolved true. */
  async generate(
    request: Omit<GenerateRequest, 'signal'>,
    options: { signal?: AbortSignal; timeoutMs?: number },
  ): Promise<Generation> {
    const current = this.#current;
    if (!current) throw new Error('no model is resident');
    const reply = await this.#o.supervisor.request({ type: 'generate', request }, options);
    return { result: reply.result, info: current.info, variant: current.variant.id };
  }

  status(): Record<string, unknown> {
    const c = this.#current;
    return {
      state: this.#state,
      reason: this.#reason || null,
      model: c ? c.info.model : null,
      variant: c ? c.variant.id : null,
      contextSize: c?.contextSize ?? null,
      runtime: c?.info.runtime ?? null,
      gpu: c?.info.gpu ?? null,
      capabilities: c?.info.capabilities ?? null,
      projector: c?.variant.mmproj ?? null,
      projectorError: c?.info.projectorError ?? null,
      worker: workerStatus(this.#o.supervisor),
      variants: this.#o.variants.map((v) => ({
        id: v.id,
        path: v.path,
        present: this.#estimates.has(v.path),
        // what the governor adds for the projector (0 while its file is not there)
        projectorBytes: projectorBytes(v.mmproj),
      })),
      lastDecision: this.#lastDecision ?? null,
      governor: this.#governor.status(),
    };
  }

  /** Unloads and stops the worker. */
  async stop(): Promise<void> {
    this.#current = undefined;
    await this.#o.supervisor.stop();
  }

  #set(state: EngineState, reason: string): boolean {
    if (state !== this.#state || reason !== this.#reason) {
      if (state === 'ready') this.#o.logger.info({ variant: this.#current?.variant.id }, 'model ready');
      else this.#o.logger.warn({ state, reason }, 'no model resident: jobs wait');
    }
    this.#state = state;
    this.#reason = reason;
    return state === 'ready';
  }

  async #unload() {
    if (!this.#current) return;
    const { variant } = this.#current;
    this.#current = undefined;
    this.#governor.recordUnloaded();
    if (this.#o.supervisor.alive) await this.#o.supervisor.request({ type: 'unload' });
    this.#o.logger.info({ variant: variant.id }, 'model unloaded');
  }

  /** Estimates files that appeared since the last look (an estimate reads only the GGUF header). */
  async #refreshEstimates() {
    const fresh = this.#o.variants.filter((v) => !this.#estimates.has(v.path) && existsSync(v.path));
    for (const path of [...this.#estimates.keys()]) if (!existsSync(path)) this.#estimates.delete(path);
    if (fresh.length === 0) return;
    const reply = await this.#o.supervisor.request({
      type: 'estimate',
      paths: fresh.map((v) => v.path),
      contextSizes: [...this.#o.contextSizes],
      gpu: this.#o.gpu,
    });
    for (const estimate of reply.estimates) {
      this.#estimates.set(estimate.path, estimate);
      this.#o.logger.info(
        {
          model: basename(estimate.path),
          architecture: estimate.architecture,
          perContext: estimate.perContext,
        },
        'model file found and estimated',
      );
    }
  }

  /**
   * Which runtime loads a variant. auto: llama.node when its projector file is there (images, audio),
   * else node-llama-cpp (text); a projector that cannot be used is reported, the model still serves text.
   */
  #runtimeFor(variant: ModelVariant): { runtime: RuntimeName; mmproj?: string; projectorError?: string } {
    const configured = this.#o.runtime;
    const mmproj = variant.mmproj;
    if (configured === 'node-llama-cpp') {
      return {
        runtime: configured,
        ...(mmproj && {
          projectorError: `model.runtime is node-llama-cpp, which takes no images or audio: set it to auto or llama.node to use ${basename(mmproj)}`,
        }),
      };
    }
    const present = mmproj !== undefined && existsSync(mmproj);
    if (configured === 'llama.node' || present) return { runtime: 'llama.node', ...(mmproj && { mmproj }) };
    return {
      runtime: 'node-llama-cpp',
      ...(mmproj && { projectorError: `the projector file ${mmproj} is not there (yet)` }),
    };
  }

  /** A configured projector file that was missing at load is there now: reload to take media. */
  #projectorAppeared(variant: ModelVariant, presentAtLoad: boolean): boolean {
    return (
      !presentAtLoad &&
      this.#o.runtime !== 'node-llama-cpp' &&
      variant.mmproj !== undefined &&
      existsSync(variant.mmproj)
    );
  }

  #variantOptions(): VariantOption[] {
    const present = this.#o.variants.filter((v) => this.#estimates.has(v.path));
    const largest = (v: ModelVariant) =>
      Math.max(...this.#estimates.get(v.path)!.perContext.map((p) => p.bytes));
    return present
      .sort((a, b) => largest(a) - largest(b))
      .map((v, rank) => {
        const projector = projectorBytes(v.mmproj);
        return {
          id: v.id,
          rank,
          estimates: [...this.#estimates.get(v.path)!.perContext]
            .sort((a, b) => b.contextSize - a.contextSize)
            .map((p) => ({ contextSize: p.contextSize, bytes: p.bytes + projector })),
        };
      });
  }
}

/** The worker's side of status(): what runs, and how often it crashed, timed out or was killed. */
function workerStatus(supervisor: WorkerSupervisor): Record<string, unknown> {
  const last = supervisor.lastExit;
  return {
    pid: supervisor.pid ?? null,
    alive: supervisor.alive,
    // exits not asked for and not caused by the daemon (native crash, outside kill, OOM killer)
    crashes: supervisor.crashes,
    // of those, taken for the kernel's OOM killer (the governor stepped down)
    oomKills: supervisor.oomKills,
    // requests (generations) that outlived their time limit
    timeouts: supervisor.timeouts,
    // workers killed because they did not answer the abort of a timed-out request
    hungKills: supervisor.hungKills,
    lastExit: last
      ? {
          at: new Date(last.at).toISOString(),
          code: last.code,
          signal: last.signal,
          oomLikely: last.oomLikely,
          hung: last.hung,
          expected: last.expected,
        }
      : null,
  };
}

/**
 * What a projector adds to the resident size: its weights (the file) plus the vision encoder's compute
 * buffers, taken as a quarter of the weights and 64 MiB. A first guess the governor corrects with the
 * worker's measured RSS after each load.
 */
function projectorBytes(mmproj: string | undefined): number {
  if (mmproj === undefined) return 0;
  try {
    const size = statSync(mmproj).size;
    return Math.round(size * 1.25) + 64 * 1024 * 1024;
  } catch {
    return 0;
  }
}
