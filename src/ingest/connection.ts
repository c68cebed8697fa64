import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { type Clock, type Logger, type Timer, withTimeout } from '../common/index.js';
import { TlsFileError } from './errors.js';

export interface MqttConnectionOptions {
  url: string;
  /** MQTT 5 by default; a broker that refuses it is spoken to in 3.1.1 from then on. */
  protocolVersion?: 4 | 5;
  /** Fixed client id: the broker keeps this gateway's session (and its queued messages) under it. */
  clientId: string;
  username?: string | undefined;
  password?: string | undefined;
  /** Paths of PEM files for mqtts. */
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
  rejectUnauthorized: boolean;
  /** seconds */
  keepalive: number;
  /** First and longest reconnect delay, seconds; the delay doubles with jitter between them. */
  reconnectMin: number;
  reconnectMax: number;
  /** Retained status topic: `online` on connect, `offline` as the last will. */
  statusTopic: string;
  /** Filters subscribed at QoS 1 on every connect without a session. */
  subscriptions: readonly string[];
  logger: Logger;
  clock: Clock;
}

/**
 * Takes one incoming message for the next journal commit; its PUBACK waits for `releaseAcks()`.
 * Throwing means it cannot be taken: nothing is acknowledged and the connection is renewed.
 */
export type MessageHandler = (packet: IPublishPacket) => void;

type SendPacket = (
  packet: { cmd: string },
  cb?: (error?: Error) => void,
  cbStorePut?: () => void,
  noStore?: boolean,
) => void;

export interface ConnectionEvents {
  connect: [];
  close: [];
}

/** MQTT session expiry asked of the broker: a week of absence keeps the queued sensor messages. */
const SESSION_EXPIRY_SECONDS = 7 * 24 * 3600;

/**
 * The gateway's MQTT session, like a trusted device: persistent (fixed id, clean start off), retained
 * `offline` will and `online` on every connect, reconnect with capped exponential backoff and jitter,
 * QoS 1 subscriptions, and a PUBACK sent only after the handler has committed the message.
 */
export class MqttConnection extends EventEmitter<ConnectionEvents> {
  /** Reconnects since start. */
  reconnects = 0;
  #client: MqttClient;
  #handler: MessageHandler | undefined;
  #paused = false;
  #stopping = false;
  #attempt = 0;
  #retry: Timer | undefined;
  #lastError: string | undefined;
  readonly #send: SendPacket;
  /** PUBACKs waiting for their messages' commit, with the connection they belong to */
  #held: { packet: { cmd: string }; generation: number }[] = [];
  #generation = 0;

  constructor(private readonly options: MqttConnectionOptions) {
    super();
    this.#client = mqtt.connect(options.url, this.#clientOptions());
    const client = this.#client;
    // mqtt.js sends a QoS 1 message's PUBACK from the callback of handleMessage and reads the next packet
    // only after that. The handler stages the message for the next journal commit; the PUBACK it
    // triggers is held here and sent by releaseAcks() once that commit is done, so messages of one socket
    // read share a transaction and none is acknowledged before it is committed (DESIGN: at-least-once in).
    const send = client['_sendPacket'].bind(client) as SendPacket;
    this.#send = send;
    (client as unknown as { _sendPacket: SendPacket })._sendPacket = (packet, cb, cbStorePut, noStore) => {
      if (packet.cmd !== 'puback') return send(packet, cb, cbStorePut, noStore);
      this.#held.push({ packet, generation: this.#generation });
      cb?.();
    };
    client.handleMessage = (packet, done) => {
      if (this.#paused || !this.#handler) return; // never acknowledged: the broker redelivers it next session
      try {
        this.#handler(packet);
      } catch (error) {
        options.logger.error({ err: error, topic: packet.topic }, 'message handler failed; reconnecting');
        this.dropAcks();
        return;
      }
      done();
    };
    client.on('connect', (connack) => {
      this.#generation += 1;
      this.#attempt = 0;
      this.#lastError = undefined;
      options.logger.info(
        { url: options.url, sessionPresent: connack.sessionPresent },
        'connected to the MQTT broker',
      );
      void this.publish(options.statusTopic, 'online', { qos: 1, retain: true }).catch(() => {});
      if (!connack.sessionPresent && options.subscriptions.length > 0) {
        client.subscribe([...options.subscriptions], { qos: 1 }, (error) => {
          if (error) options.logger.error({ err: error }, 'subscribe failed');
        });
      }
      this.emit('connect');
    });
    client.on('close', () => {
      this.emit('close');
      this.#scheduleReconnect();
    });
    client.on('error', (error) => {
      this.#lastError = error.message;
      if (/unacceptable protocol version/i.test(error.message) && client.options.protocolVersion === 5) {
        options.logger.info({ url: options.url }, 'the broker refuses MQTT 5; using MQTT 3.1.1');
        client.options.protocolVersion = 4;
        delete client.options.properties;
        return;
      }
      options.logger.warn({ err: error.message, url: options.url }, 'MQTT connection error');
    });
  }

  /** Installs the function that commits each incoming message (before any subscription is served). */
  setHandler(handler: MessageHandler): void {
    this.#handler = handler;
  }

  get connected(): boolean {
    return this.#client.connected;
  }

  get lastError(): string | undefined {
    return this.#lastError;
  }

  /** Resolves once connected, or rejects with the last error after `timeoutMs`. */
  waitConnected(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = this.options.clock.setTimeout(
        () =>
          finish(
            new Error(
              `no connection to ${this.options.url} after ${timeoutMs} ms${this.#lastError ? `: ${this.#lastError}` : ''}`,
            ),
          ),
        timeoutMs,
      );
      const onConnect = () => finish();
      const onAbort = () => finish(new Error('aborted'));
      const finish = (error?: Error) => {
        timer.cancel();
        this.off('connect', onConnect);
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else resolve();
      };
      this.on('connect', onConnect);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Publishes and resolves on the broker's acknowledgement (QoS 1/2) or once written (QoS 0). */
  /** Publishes; MQTT v5 `properties` (correlation data, content type) are left out on a 3.1.1 session. */
  publish(
    topic: string,
    payload: string | Buffer,
    opts: {
      qos: 0 | 1 | 2;
      retain: boolean;
      properties?: { correlationData?: Buffer; contentType?: string } | undefined;
    },
  ): Promise<void> {
    const properties = this.options.protocolVersion === 5 ? opts.properties : undefined;
    return new Promise((resolve, reject) => {
      this.#client.publish(
        topic,
        payload,
        { qos: opts.qos, retain: opts.retain, ...(properties && { properties }) },
        (error) => (error ? reject(error) : resolve()),
      );
    });
  }

  /** Sends the PUBACKs of the messages committed so far (those of an earlier connection are dropped). */
  releaseAcks(): void {
    const held = this.#held;
    if (held.length === 0) return;
    this.#held = [];
    for (const { packet, generation } of held) {
      if (generation === this.#generation && this.connected) this.#send(packet);
    }
  }

  /** The commit failed: acknowledge nothing and reconnect, so the broker redelivers. */
  dropAcks(): void {
    this.#held = [];
    this.#client.stream?.destroy();
  }

  /** Stops reading messages: the ones not yet handled stay unacknowledged, for the next session. */
  pauseIntake(): void {
    this.#paused = true;
  }

  /**
   * Publishes the final retained status, then disconnects. The will is not sent on a clean disconnect,
   * so `offline` is published here; `stopping` was published when shutdown began.
   */
  async close(timeoutMs = 2000): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#retry?.cancel();
    this.#paused = true;
    if (this.connected) {
      await withTimeout(
        this.publish(this.options.statusTopic, 'offline', { qos: 1, retain: true }),
        timeoutMs,
      ).catch(() => {});
    }
    await new Promise<void>((resolve) => this.#client.end(true, {}, () => resolve()));
  }

  #scheduleReconnect() {
    if (this.#stopping || this.#retry) return;
    const { reconnectMin, reconnectMax } = this.options;
    const ceiling = Math.min(reconnectMax, reconnectMin * 2 ** this.#attempt) * 1000;
    // Full jitter in the upper half: gateways that lost the same broker do not all return at once.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#attempt += 1;
    this.#retry = this.options.clock.setTimeout(() => {
      this.#retry = undefined;
      if (this.#stopping) return;
      this.reconnects += 1;
      this.#client.reconnect();
    }, delay);
  }

  #clientOptions(): IClientOptions {
    const o = this.options;
    const read = (key: 'ca' | 'cert' | 'key') => {
      const path = o[key];
      if (!path) return undefined;
      try {
        return readFileSync(path);
      } catch (error) {
        throw new TlsFileError(key, path, (error as Error).message);
      }
    };
    return {
      protocolVersion: o.protocolVersion ?? 5,
      clientId: o.clientId,
      clean: false,
      properties: o.protocolVersion === 4 ? undefined : { sessionExpiryInterval: SESSION_EXPIRY_SECONDS },
      username: o.username,
      password: o.password,
      ca: read('ca'),
      cert: read('cert'),
      key: read('key'),
      rejectUnauthorized: o.rejectUnauthorized,
      keepalive: o.keepalive,
      reconnectPeriod: 0, // reconnects are scheduled here, with backoff and jitter
      connectTimeout: 10_000,
      resubscribe: false, // subscribed on each connect that has no session, above
      will: { topic: o.statusTopic, payload: Buffer.from('offline'), qos: 1, retain: true },
    };
  }
}
