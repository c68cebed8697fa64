/**
 * The broker side of `outpost simulate`: connecting (MQTT 5, else 3.1.1), following the broker's Receive
 * Maximum across reconnects, and ending the client without hanging on a broker that is gone.
 */

import type { IClientOptions, IConnackPacket, MqttClient } from 'mqtt';
import mqtt from 'mqtt';

/** The broker credentials `outpost simulate` connects with. */
export interface BrokerCredentials {
  /** Username for the broker; default none. */
  username?: string;
  /** Password for the broker; default none. */
  password?: string;
}

const CONNECT_TIMEOUT_MS = 5_000;
const END_TIMEOUT_MS = 2_000;

export interface Connection {
  client: MqttClient;
  /**
   * the broker's Receive Maximum: mqtt.js does not enforce it, and MQTT 5 lets a broker disconnect (0x93) a
   * client that exceeds it
   */
  receiveMaximum: number;
}

/**
 * Resolves with the connected client, or undefined when `signal` aborts first. MQTT 5 is preferred; a broker
 * that refuses it (e.g. aedes, older mosquitto) gets MQTT 3.1.1, so the simulator works against any broker.
 */
export async function connect(
  url: string,
  options: BrokerCredentials,
  signal: AbortSignal,
): Promise<Connection | undefined> {
  try {
    return await connectWith(5, url, options, signal);
  } catch (error) {
    if (!refusedProtocolVersion(error)) throw error;
    return connectWith(4, url, options, signal);
  }
}

/** CONNACK reason code 1 (MQTT 3.1.1) or 0x84 (MQTT 5): unacceptable / unsupported protocol version. */
function refusedProtocolVersion(error: unknown): boolean {
  const cause = error instanceof Error ? error.cause : undefined;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? cause.code : undefined;
  return code === 1 || code === 0x84;
}

function connectWith(
  protocolVersion: 4 | 5,
  url: string,
  options: BrokerCredentials,
  signal: AbortSignal,
): Promise<Connection | undefined> {
  const clientOptions: IClientOptions = {
    protocolVersion,
    clientId: `outpost-simulate-${process.pid}-${Math.random().toString(16).slice(2, 10)}`,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // A broker restart mid-run should pause the simulation, not end it; QoS > 0 publishes are resent.
    reconnectPeriod: 1_000,
    clean: true,
  };
  if (options.username !== undefined) clientOptions.username = options.username;
  if (options.password !== undefined) clientOptions.password = options.password;

  const shownUrl = redact(url);
  return new Promise((resolve, reject) => {
    let client: MqttClient;
    try {
      client = mqtt.connect(url, clientOptions);
    } catch (error) {
      reject(new Error(`cannot connect to MQTT broker at ${shownUrl}: ${describe(error)}`, { cause: error }));
      return;
    }
    const connection: Connection = { client, receiveMaximum: 65_535 };
    const onConnack = (connack: IConnackPacket) => {
      connection.receiveMaximum = connack.properties?.receiveMaximum ?? 65_535;
    };
    // Kept for the whole run: reconnects may bring a different limit.
    client.on('connect', onConnack);

    const settle = (outcome: { error: Error } | { connection: Connection | undefined }) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
      if ('error' in outcome) {
        client.end(true);
        reject(outcome.error);
      } else if (outcome.connection === undefined) {
        client.end(true);
        resolve(undefined);
      } else {
        // Later errors (e.g. refused reconnects) must not crash the process; reconnecting handles them.
        client.on('error', () => {});
        resolve(outcome.connection);
      }
    };
    const fail = (reason: string, cause?: unknown) =>
      settle({ error: new Error(`cannot connect to MQTT broker at ${shownUrl}: ${reason}`, { cause }) });
    const onConnect = () => settle({ connection });
    // An AggregateError (several addresses tried) has an empty message; its code still says what happened.
    const onError = (error: Error) =>
      fail(error.message || (error as NodeJS.ErrnoException).code || 'error', error);
    // A close before CONNACK without an error (e.g. the peer hung up) would otherwise retry silently.
    const onClose = () => fail('connection closed before the broker acknowledged it');
    const onAbort = () => settle({ connection: undefined });
    const timer = setTimeout(
      () => fail(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`),
      CONNECT_TIMEOUT_MS,
    );

    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Ends the client, forcing it when a graceful DISCONNECT does not complete in time. */
export async function endClient(client: MqttClient): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), END_TIMEOUT_MS);
  });
  try {
    // A graceful DISCONNECT needs a live connection; otherwise mqtt.js would wait for a reconnect.
    if (!client.connected) {
      await client.endAsync(true);
      return;
    }
    const outcome = await Promise.race([client.endAsync(), timeout]);
    if (outcome === 'timeout') await client.endAsync(true);
  } catch {
    // Nothing useful to do about a failing disconnect at shutdown.
  } finally {
    clearTimeout(timer);
  }
}

/** Hides a password embedded in the URL, since error messages end up in logs. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === '') return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
