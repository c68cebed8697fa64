import type { Clock, Logger } from '../common/index.js';
import type { Config } from '../config/index.js';
import { MqttConnection } from '../ingest/index.js';
import { OutboxDrain, type WireTopics, wireTopics } from '../publish/index.js';
import type { OutboxClass, OutboxLimits, Store } from '../store/index.js';

/** The fleet uplink: a second MQTT session, to an upstream broker, that drains its own outbox. */
export interface Uplink {
  topics: WireTopics;
  forward: ReadonlySet<OutboxClass>;
  connection: MqttConnection;
  drain: OutboxDrain;
}

/** The limits of an outbox as the store takes them, from its config section. */
export function outboxLimits(
  section: Config['outbox'] | Config['uplink']['outbox'],
  policy: Config['outbox']['policy'],
): OutboxLimits {
  return {
    maxMessages: section.maxMessages,
    maxBytes: section.maxBytes,
    hardMaxMessages: Math.max(section.hardMaxMessages, section.maxMessages),
    hardMaxBytes: Math.max(section.hardMaxBytes, section.maxBytes),
    maxAgeMs: section.maxAge * 1000,
    policy,
  };
}

/** The uplink's topics and forwarded classes, known before its connection starts (Findings needs them). */
export function uplinkRoute(config: Config): Pick<Uplink, 'topics' | 'forward'> | undefined {
  if (!config.uplink.url) return undefined;
  return {
    topics: wireTopics(config.uplink.topicPrefix, config.gatewayId),
    forward: new Set(config.uplink.forward),
  };
}

/**
 * Connects upstream (persistent session, retained `online`/`offline` status under the uplink's prefix, TLS
 * and credentials of its own) and drains the uplink outbox through it. It subscribes to nothing: the
 * fleet's broker never sends the gateway work.
 */
export function startUplink(
  config: Config,
  route: Pick<Uplink, 'topics' | 'forward'>,
  store: Store,
  logger: Logger,
  clock: Clock,
): Uplink {
  const u = config.uplink;
  if (!u.url || !store.uplinkOutbox) throw new Error('startUplink without uplink.url');
  const log = logger.child({ stage: 'uplink' });
  const connection = new MqttConnection({
    url: u.url,
    protocolVersion: u.protocolVersion,
    clientId: u.clientId ?? `outpost-uplink-${config.gatewayId}`,
    username: u.username,
    password: u.password,
    ca: u.ca,
    cert: u.cert,
    key: u.key,
    rejectUnauthorized: u.rejectUnauthorized,
    keepalive: u.keepalive,
    reconnectMin: u.reconnectMin,
    reconnectMax: u.reconnectMax,
    statusTopic: route.topics.status(),
    subscriptions: [],
    logger: log,
    clock,
  });
  const drain = new OutboxDrain({
    outbox: store.uplinkOutbox,
    transport: connection,
    inflight: u.outbox.inflight,
    clock,
    logger: log,
  });
  return { ...route, connection, drain };
}
