import type { ApiServer } from '../api/index.js';
import type { Logger } from '../common/index.js';
import type { EmbeddedBroker, Intake, MicrophoneSource, MqttConnection } from '../ingest/index.js';
import type { Pipeline } from '../pipeline/index.js';
import type {
  Findings,
  HomeAssistantDiscovery,
  OutboxDrain,
  RequestHandler,
  WireTopics,
} from '../publish/index.js';
import type { Store } from '../store/index.js';
import type { DiskGuard } from './disk.js';
import type { InferenceParts } from './inference.js';
import type { Uplink } from './uplink.js';

/** Budget for the final status publish and disconnect while stopping, ms. */
export const STOP_STATUS_MS = 1000;

/** What the daemon started, in start order. */
export interface Parts {
  store: Store;
  disk: DiskGuard;
  broker?: EmbeddedBroker;
  topics: WireTopics;
  findings: Findings;
  pipeline: Pipeline;
  intake: Intake;
  connection: MqttConnection;
  drain: OutboxDrain;
  /** the fleet uplink, when uplink.url is set */
  uplink?: Uplink;
  api: ApiServer;
  inference?: InferenceParts;
  microphone?: MicrophoneSource;
  discovery?: HomeAssistantDiscovery;
  requests?: RequestHandler;
  /** set when shutdown begins: the embedded broker refuses new publishes */
  intakePaused?: boolean;
}

/** Closes whatever was started, in reverse order; returns 1 if anything failed. */
export async function stopParts(parts: Partial<Parts>, logger: Logger): Promise<number> {
  let code = 0;
  const steps: [string, (() => unknown) | undefined][] = [
    ['microphone', parts.microphone && (() => parts.microphone?.stop())],
    // A discovery publish that never got its PUBACK (seen after a broker was SIGKILLed) must not hold the
    // stop: its configs are retained and announced again on the next start.
    ['homeassistant', parts.discovery && (() => race(parts.discovery!.dispose(), STOP_STATUS_MS))],
    ['requests', parts.requests && (() => parts.requests?.dispose())],
    ['outbox', parts.drain && (() => parts.drain?.stop())],
    ['uplink outbox', parts.uplink && (() => parts.uplink?.drain.stop())],
    ['uplink', parts.uplink && (() => parts.uplink?.connection.close(STOP_STATUS_MS))],
    ['mqtt', parts.connection && (() => parts.connection?.close(STOP_STATUS_MS))],
    ['http', parts.api && (() => parts.api?.close())],
    ['pipeline', parts.pipeline && (() => parts.pipeline?.stop(false))],
    ['inference', parts.inference && (() => parts.inference?.stop())],
    ['broker', parts.broker && (() => parts.broker?.close())],
    ['store', parts.store && (() => parts.store?.close())],
  ];
  for (const [name, fn] of steps) {
    if (!fn) continue;
    logger.debug({ step: name }, 'closing');
    try {
      await fn();
    } catch (error) {
      code = 1;
      logger.error({ err: error, step: name }, 'stop step failed');
    }
  }
  return code;
}

export function race<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return Promise.race([
    promise,
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ms).unref()),
  ]);
}

/** The broker URL without credentials, for logs and status. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '********';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}
