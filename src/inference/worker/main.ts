/**
 * The inference worker: a child process that owns the one resident model. A native crash or the OOM
 * killer takes this process, not ingest and the store. Started by WorkerSupervisor with fork().
 */

import { writeFileSync } from 'node:fs';
import type { Runtime, RuntimeName } from '../runtime.js';
import { estimateModels as estimate } from '../runtimes/estimate.js';
import type { WorkerReply, WorkerRequest } from './protocol.js';

/**
 * Each runtime's adapter, imported on first use: a worker that only ever loads one runtime never loads the
 * other's JavaScript and native module.
 */
const RUNTIMES: Record<RuntimeName, () => Promise<Runtime>> = {
  'node-llama-cpp': async () => new (await import('../runtimes/nodeLlamaCpp.js')).NodeLlamaCppRuntime(),
  'llama.node': async () => new (await import('../runtimes/llamaNode.js')).LlamaNodeRuntime(),
};

/** The one runtime instance; a load that names another runtime unloads and drops it first. */
let runtime: Runtime | undefined;
const running = new Map<number, AbortController>();

async function runtimeFor(name: RuntimeName): Promise<Runtime> {
  if (runtime?.name !== name) {
    // Never two models resident: the old runtime's model goes before the new runtime loads one.
    const previous = runtime;
    runtime = undefined;
    await previous?.unload();
    runtime = await RUNTIMES[name]();
  }
  return runtime;
}

// The OOM killer's first choice should be this process (the supervisor restarts it on a smaller model),
// never the daemon that holds the store and the broker session. Raising one's own score needs no privilege.
try {
  writeFileSync('/proc/self/oom_score_adj', '500');
} catch {
  // not Linux, or /proc read-only: the kernel's own choice stands
}

const send = (reply: WorkerReply) => process.send?.(reply);
const rss = () => process.memoryUsage.rss();

async function handle(message: WorkerRequest): Promise<void> {
  try {
    switch (message.type) {
      case 'load': {
        const started = performance.now();
        const info = await (await runtimeFor(message.options.runtime)).load(message.options);
        send({ type: 'loaded', id: message.id, info, rssBytes: rss(), loadMs: performance.now() - started });
        return;
      }
      case 'generate': {
        const controller = new AbortController();
        running.set(message.id, controller);
        try {
          if (!runtime) throw new Error('no model loaded');
          const result = await runtime.generate({ ...message.request, signal: controller.signal });
          send({ type: 'generated', id: message.id, result, rssBytes: rss() });
        } catch (error) {
          send(failure(message.id, error, controller.signal.aborted));
        } finally {
          running.delete(message.id);
        }
        return;
      }
      case 'abort':
        running.get(message.target)?.abort(new Error('aborted by the daemon'));
        send({ type: 'done', id: message.id });
        return;
      case 'estimate':
        send({
          type: 'estimated',
          id: message.id,
          estimates: await estimate(message.paths, message.contextSizes, message.gpu),
        });
        return;
      case 'unload':
        await runtime?.unload();
        send({ type: 'unloaded', id: message.id, rssBytes: rss() });
        return;
      case 'shutdown':
        for (const controller of running.values()) controller.abort(new Error('worker shutting down'));
        await runtime?.unload();
        send({ type: 'done', id: message.id });
        process.disconnect?.();
        return;
    }
  } catch (error) {
    send(failure(message.id, error, false));
  }
}

function failure(id: number, error: unknown, aborted: boolean): WorkerReply {
  const e = error instanceof Error ? error : new Error(String(error));
  return { type: 'failed', id, error: { name: e.name, message: e.message, aborted } };
}

process.on('message', (message: WorkerRequest) => void handle(message));
// The daemon went away: nothing is left to answer to.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready', pid: process.pid });
