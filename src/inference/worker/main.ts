/**
 * The inference worker: a child process that owns the one resident model. A native crash or the OOM
 * killer takes this process, not ingest and the store. Started by WorkerSupervisor with fork().
 */

import type { Runtime } from '../runtime.js';
import { estimateModels as estimate } from '../runtimes/estimate.js';
import { NodeLlamaCppRuntime } from '../runtimes/nodeLlamaCpp.js';
import type { WorkerReply, WorkerRequest } from './protocol.js';

const runtime: Runtime = new NodeLlamaCppRuntime();
const running = new Map<number, AbortController>();

const send = (reply: WorkerReply) => process.send?.(reply);
const rss = () => process.memoryUsage.rss();

async function handle(message: WorkerRequest): Promise<void> {
  try {
    switch (message.type) {
      case 'load': {
        const started = performance.now();
        const info = await runtime.load(message.options);
        send({ type: 'loaded', id: message.id, info, rssBytes: rss(), loadMs: performance.now() - started });
        return;
      }
      case 'generate': {
        const controller = new AbortController();
        running.set(message.id, controller);
        try {
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
        await runtime.unload();
        send({ type: 'unloaded', id: message.id, rssBytes: rss() });
        return;
      case 'shutdown':
        for (const controller of running.values()) controller.abort(new Error('worker shutting down'));
        await runtime.unload();
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
