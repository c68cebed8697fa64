import { Worker } from 'node:worker_threads';
import type { DspReply, DspRequest } from './dspProtocol.js';

const here = import.meta.url;
/** The thread's entry beside this file: compiled JS in production, TypeScript (through tsx) in development. */
const entry = new URL(here.endsWith('.ts') ? './dspWorker.ts' : './dspWorker.js', here);
const tsxApi = new URL('../../../node_modules/tsx/dist/esm/api/index.mjs', here).href;

/** Heap of the DSP thread, MiB: a clip that needs more fails alone instead of growing the daemon. */
const HEAP_MB = 256;

type Pending = { resolve: (reply: DspReply) => void; reject: (error: Error) => void };

/**
 * One audio DSP thread, started on first use and again after it died; requests are answered in order.
 * A crash (or a clip that exhausts its heap) fails the requests in flight, never the daemon.
 */
export class AudioDsp {
  #worker: Promise<Worker> | undefined;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  /** Decodes, resamples and segments one clip in the thread. */
  async process(request: Omit<DspRequest, 'id'>): Promise<DspReply> {
    if (this.#closed) throw new Error('the audio thread is stopped');
    const worker = await this.#start();
    const id = this.#nextId++;
    return new Promise<DspReply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ ...request, id } satisfies DspRequest);
    });
  }

  /** Stops the thread; requests in flight fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const worker = await this.#worker?.catch(() => undefined);
    this.#worker = undefined;
    await worker?.terminate();
  }

  #start(): Promise<Worker> {
    this.#worker ??= new Promise<Worker>((resolve, reject) => {
      const options = { resourceLimits: { maxOldGenerationSizeMb: HEAP_MB } };
      const worker = entry.pathname.endsWith('.ts')
        ? new Worker(
            `import(${JSON.stringify(tsxApi)}).then((api) => api.tsImport(${JSON.stringify(entry.href)}, ${JSON.stringify(here)}));`,
            { ...options, eval: true },
          )
        : new Worker(entry, options);
      worker.unref();
      worker.on('message', (message: DspReply | { ready: true }) => {
        if ('ready' in message) return resolve(worker);
        const pending = this.#pending.get(message.id);
        this.#pending.delete(message.id);
        pending?.resolve(message);
      });
      const died = (error: Error) => {
        this.#worker = undefined;
        reject(error);
        for (const pending of this.#pending.values()) pending.reject(error);
        this.#pending.clear();
      };
      worker.on('error', (error) => died(new Error(`the audio thread failed: ${error.message}`)));
      worker.on('exit', (code) => {
        if (!this.#closed) died(new Error(`the audio thread exited (code ${code})`));
      });
    });
    return this.#worker;
  }
}
