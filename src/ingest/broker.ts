import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import type { Logger } from '../common/index.js';
import { BrokerListenError } from './errors.js';

export interface EmbeddedBrokerOptions {
  /** Address to listen on. */
  host: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** When set with `password`, every client must present them. */
  username?: string | undefined;
  password?: string | undefined;
  /**
   * Runs for every publish before the broker acknowledges it, in process: the gateway commits sensor
   * messages here and calls `ack` after the commit, so a publisher's PUBACK means the message is in the
   * journal. `ack(error)` refuses it: the client is disconnected and sends it again later.
   */
  onPublish?: (packet: PublishPacket, ack: (error?: Error) => void) => void;
  logger: Logger;
}

/** What the broker hands `onPublish`. */
export interface PublishPacket {
  topic: string;
  payload: Buffer;
  dup: boolean;
  qos: 0 | 1 | 2;
}

export interface EmbeddedBroker {
  /** mqtt:// URL that reaches it */
  readonly url: string;
  readonly port: number;
  /** Number of connected clients. */
  clients(): number;
  close(): Promise<void>;
}

/** Starts the aedes broker that serves a gateway with no broker of its own. */
export async function startEmbeddedBroker(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({ id: 'outpost-embedded' });
  const { username, password, logger } = options;
  if (username !== undefined && password !== undefined) {
    aedes.authenticate = (_client, user, pass, done) => {
      const ok =
        user === username && pass !== undefined && safeEqual(Buffer.from(pass), Buffer.from(password));
      if (!ok) logger.warn({ user }, 'embedded broker refused a client: bad credentials');
      done(null, ok);
    };
  }
  const { onPublish } = options;
  aedes.authorizePublish = (_client, packet, done) => {
    // aedes' own default: clients may not publish into $SYS.
    if (packet.topic.startsWith('$SYS/')) return done(new Error('$SYS/ topics are reserved'));
    if (!onPublish) return done(null);
    onPublish(
      {
        topic: packet.topic,
        payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
        dup: packet.dup === true,
        qos: packet.qos,
      },
      (error) => done(error ?? null),
    );
  };
  aedes.on('clientError', (client, error) =>
    logger.debug({ client: client.id, err: error.message }, 'broker client error'),
  );

  const server: Server = createServer(aedes.handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new BrokerListenError(options.host, options.port, error.message)));
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  const connectHost = options.host === '0.0.0.0' ? '127.0.0.1' : options.host === '::' ? '[::1]' : host;
  logger.info({ host: options.host, port }, 'embedded MQTT broker listening');

  let closed = false;
  return {
    url: `mqtt://${connectHost}:${port}`,
    port,
    clients: () => aedes.connectedClients,
    async close() {
      if (closed) return;
      closed = true;
      // aedes first: it disconnects the clients, which server.close() would otherwise wait for.
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await stopped;
    },
  };
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
