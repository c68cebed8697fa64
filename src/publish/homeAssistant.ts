import { type Clock, type Logger, systemClock, type Timer } from '../common/index.js';
import {
  type DiscoveryConfig,
  type DiscoveryConfigInput,
  discoveryConfigs,
  type KnownSources,
} from './homeAssistantConfigs.js';

/** Where the discovery config topics published last are kept, so a restart can remove stale ones. */
export interface DiscoveryStore {
  load(): string[];
  save(topics: string[]): void;
}

export interface HomeAssistantDiscoveryOptions extends DiscoveryConfigInput {
  /** Publishes one retained QoS 1 message (the gateway's MQTT connection). */
  publish: (topic: string, payload: string, opts: { retain: true; qos: 1 }) => Promise<void>;
  /** The sources known now; read on every announce and refresh. */
  known: () => KnownSources;
  store: DiscoveryStore;
  logger: Logger;
  /** Default the system clock. */
  clock?: Clock | undefined;
  /**
   * Milliseconds between Home Assistant's `online` and the republish; another `online` within it starts
   * the wait again, so one restart (or a burst of them) costs one republish. Default 2000.
   */
  republishDelayMs?: number | undefined;
}

/**
 * Home Assistant MQTT discovery for one gateway: retained config messages under
 * `<prefix>/<component>/outpost_<gw>/<object_id>/config` that point Home Assistant at the wire topics
 * (status, health, results, events, windows) with the templates that read them.
 * https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery
 */
export class HomeAssistantDiscovery {
  /** Home Assistant's birth/last-will topic: the daemon subscribes to it and hands its messages here. */
  readonly statusTopic: string;
  /** config topic -> payload Home Assistant's broker has acknowledged from this process */
  readonly #published = new Map<string, string>();
  #announced = false;
  #chain: Promise<void> = Promise.resolve();
  #timer: Timer | undefined;
  #disposed = false;

  constructor(private readonly options: HomeAssistantDiscoveryOptions) {
    this.statusTopic = `${options.prefix ?? 'homeassistant'}/status`;
  }

  /** Publishes every config, removes those of sources gone since last time, and saves the set. */
  announce(): Promise<void> {
    return this.#serial(() => this.#sync(true));
  }

  /** After the sources may have changed: publishes only new or changed configs, and removals. */
  refresh(): Promise<void> {
    return this.#serial(() => this.#sync(!this.#announced));
  }

  /**
   * A message on a subscribed topic; true when it was Home Assistant's status. `online` (Home Assistant
   * started, or its broker connection came back) republishes everything after `republishDelayMs`.
   */
  onMessage(topic: string, payload: Buffer | string): boolean {
    if (topic !== this.statusTopic) return false;
    if (payload.toString().trim() !== 'online' || this.#disposed) return true;
    this.#timer?.cancel();
    const clock = this.options.clock ?? systemClock;
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      void this.announce();
    }, this.options.republishDelayMs ?? 2000);
    return true;
  }

  /** The configs for the sources known now. */
  configs(): DiscoveryConfig[] {
    return discoveryConfigs(this.options, this.options.known());
  }

  /** Stops the pending republish and waits for a publish under way; the retained configs stay. */
  async dispose(): Promise<void> {
    this.#disposed = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    await this.#chain;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  /** One publish pass at a time, in call order; a failure is logged, never thrown. */
  #serial(run: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(async () => {
      if (this.#disposed) return;
      try {
        await run();
      } catch (error) {
        this.options.logger.error({ err: error }, 'Home Assistant discovery failed');
      }
    });
    this.#chain = next;
    return next;
  }

  async #sync(all: boolean): Promise<void> {
    const { publish, store, logger } = this.options;
    const current = new Map(this.configs().map((c) => [c.topic, JSON.stringify(c.payload)]));
    const previous = [...safeLoad(store, logger), ...this.#published.keys()];
    const stale = [...new Set(previous)].filter((topic) => OWN_TOPIC.test(topic) && !current.has(topic));
    const changed = [...current].filter(([topic, payload]) => all || this.#published.get(topic) !== payload);
    const opts = { retain: true, qos: 1 } as const;

    const sent = await Promise.allSettled(changed.map(([topic, payload]) => publish(topic, payload, opts)));
    // An empty retained payload both deletes the entity in Home Assistant and clears the retained message.
    const removed = await Promise.allSettled(stale.map((topic) => publish(topic, '', opts)));

    const failed: string[] = [];
    sent.forEach((outcome, i) => {
      const [topic, payload] = changed[i]!;
      if (outcome.status === 'fulfilled') this.#published.set(topic, payload);
      else failed.push(topic);
    });
    const keep: string[] = [];
    removed.forEach((outcome, i) => {
      const topic = stale[i]!;
      if (outcome.status === 'fulfilled') this.#published.delete(topic);
      else keep.push(topic);
    });
    if (all && failed.length === 0) this.#announced = true;
    // Topics that may be retained at the broker: all current ones, and the removals that did not get through.
    try {
      store.save([...current.keys(), ...keep].sort());
    } catch (error) {
      logger.warn({ err: error }, 'could not save the Home Assistant discovery topics');
    }
    const counts = { published: changed.length - failed.length, removed: stale.length - keep.length };
    if (failed.length + keep.length > 0) {
      const first = [...sent, ...removed].find((o) => o.status === 'rejected');
      logger.warn(
        { ...counts, failed: failed.length + keep.length, err: first?.reason },
        'some Home Assistant discovery messages were not published; they are sent again on the next announce',
      );
    } else if (counts.published + counts.removed > 0) {
      logger.info(counts, 'Home Assistant discovery published');
    }
  }
}

/**
 * A config topic this class makes. A stored topic is removed only if it has this shape, so a damaged store
 * cannot clear other programs' retained messages; the gateway id and prefix may differ (renamed gateway).
 */
const OWN_TOPIC = /^[^#+]+\/(sensor|binary_sensor)\/outpost_[A-Za-z0-9_-]+\/[A-Za-z0-9_-]+\/config$/;

function safeLoad(store: DiscoveryStore, logger: Logger): string[] {
  try {
    return store.load();
  } catch (error) {
    logger.warn({ err: error }, 'could not load the Home Assistant discovery topics published last time');
    return [];
  }
}
