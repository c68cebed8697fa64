/**
 * `outpost doctor`'s broker check. With mqtt.url: one MQTT connection with the configured credentials and
 * TLS files (a throwaway client id with a clean session: the gateway's own session is left alone), then a
 * subscription to the route filters, which a broker's ACL may refuse. Without it: the embedded broker's port
 * is free to bind, or already served by a running outpost (its retained status is `online`).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Config } from '../config/index.js';
import { redactUrl } from '../daemon/index.js';
import type { CheckResult, DoctorCheck } from './doctor.js';
import { firstLine } from './doctorChecks.js';

const CONNECT_MS = 3000;
const SUBSCRIBE_MS = 2000;
/** How long retained status messages are waited for on a taken port. */
const STATUS_MS = 1500;

type ConnectError = Error & { code?: string | number };

/** One connection attempt (no reconnects): the client, or why there is none. */
function connectOnce(
  url: string,
  options: IClientOptions,
  signal: AbortSignal,
): Promise<{ client: MqttClient } | { error: ConnectError }> {
  return new Promise((resolve) => {
    const client = mqtt.connect(url, {
      ...options,
      protocolVersion: 4,
      clientId: `outpost-doctor-${randomBytes(4).toString('hex')}`,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: CONNECT_MS,
    });
    let lastError: ConnectError | undefined;
    let settled = false;
    const done = (result: { client: MqttClient } | { error: ConnectError }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if ('error' in result) client.end(true);
      resolve(result);
    };
    const timer = setTimeout(
      () =>
        done({
          error: Object.assign(new Error(`no answer within ${CONNECT_MS / 1000} s`), { code: 'ETIMEDOUT' }),
        }),
      CONNECT_MS + 500,
    );
    const onAbort = () => done({ error: new Error('aborted') });
    signal.addEventListener('abort', onAbort);
    // Kept for the life of the client: an error after the verdict must not become an unhandled 'error'.
    client.on('error', (error: ConnectError) => {
      lastError = error;
    });
    client.once('connect', () => done({ client }));
    client.once('close', () =>
      done({ error: lastError ?? new Error('the broker closed the connection before accepting it') }),
    );
  });
}

/** What went wrong in words, and what to change. */
function explain(error: ConnectError, url: string, username?: string): { message: string; fix: string } {
  const where = redactUrl(url);
  const code = error.code;
  const urlKey = 'mqtt.url (OUTPOST_MQTT_URL)';
  if (code === 'ECONNREFUSED') {
    return {
      message: `nothing listens at ${where} (connection refused)`,
      fix: `start the broker (e.g. \`systemctl start mosquitto\`) or correct ${urlKey}; unset it to use the embedded broker`,
    };
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return {
      message: `cannot resolve the host of ${where}`,
      fix: `correct the host in ${urlKey}, or check DNS`,
    };
  }
  if (code === 'ETIMEDOUT' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
    return {
      message: `${where} does not answer (${firstLine(error)})`,
      fix: `check that the broker host is up and its port open (firewall), or correct ${urlKey}`,
    };
  }
  if (code === 4 || code === 5) {
    return {
      message: `${where} refuses ${username ? `the credentials of ${username}` : 'a client without credentials'}: ${firstLine(error)}`,
      fix: 'set mqtt.username and mqtt.password (OUTPOST_MQTT_USERNAME, OUTPOST_MQTT_PASSWORD) to an account the broker accepts',
    };
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return {
      message: `the certificate of ${where} is not valid now (${code})`,
      fix: 'check the clock (see the clock check), or renew the broker certificate',
    };
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return {
      message: `the certificate of ${where} does not name its host`,
      fix: `use the host name the certificate was issued for in ${urlKey}`,
    };
  }
  if (typeof code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_(VERIFY|GET)/.test(code)) {
    return {
      message: `the certificate of ${where} is not trusted (${code})`,
      fix: 'set mqtt.ca (OUTPOST_MQTT_CA) to the PEM of the CA that signed the broker certificate',
    };
  }
  return {
    message: `cannot connect to ${where}: ${firstLine(error)}`,
    fix: `check ${urlKey} (mqtts:// for a TLS port, mqtt:// otherwise) and the broker's log`,
  };
}

/** The configured TLS files, read; or the key whose file cannot be read. */
function tlsFiles(config: Config): { files: Partial<Record<'ca' | 'cert' | 'key', Buffer>> } | CheckResult {
  const files: Partial<Record<'ca' | 'cert' | 'key', Buffer>> = {};
  for (const key of ['ca', 'cert', 'key'] as const) {
    const path = config.mqtt[key];
    if (!path) continue;
    try {
      files[key] = readFileSync(path);
    } catch (error) {
      return {
        status: 'fail',
        message: `mqtt.${key}: cannot read ${path}: ${firstLine(error)}`,
        fix: `set mqtt.${key} (OUTPOST_MQTT_${key.toUpperCase()}) to a readable PEM file`,
      };
    }
  }
  return { files };
}

async function externalBroker(config: Config, url: string, signal: AbortSignal): Promise<CheckResult> {
  const tls = tlsFiles(config);
  if ('status' in tls) return tls;
  const { username, password, rejectUnauthorized } = config.mqtt;
  const connected = await connectOnce(url, { username, password, rejectUnauthorized, ...tls.files }, signal);
  if ('error' in connected) return { status: 'fail', ...explain(connected.error, url, username) };
  const client = connected.client;
  try {
    const filters = [...new Set(config.ingest.routes.map((r) => r.filter))];
    const granted = await new Promise<{ topic: string; qos: number }[]>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no SUBACK within ${SUBSCRIBE_MS / 1000} s`)),
        SUBSCRIBE_MS,
      );
      client.subscribe(filters, { qos: 1 }, (error, grants) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(grants ?? []);
      });
    });
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    const who = username ? `as ${username}` : 'anonymously';
    if (refused.length > 0) {
      return {
        status: 'fail',
        message: `connected to ${redactUrl(url)} ${who}, but it refuses the subscription to ${refused.join(', ')}`,
        fix: `allow ${username ?? 'the gateway'} to read ${refused.join(', ')} in the broker's ACL`,
      };
    }
    return {
      status: 'ok',
      message: `connected to ${redactUrl(url)} ${who}; subscribed to ${filters.length} route filters`,
    };
  } catch (error) {
    return {
      status: 'fail',
      message: `connected to ${redactUrl(url)}, but subscribing failed: ${firstLine(error)}`,
      fix: "allow the gateway to subscribe to the ingest.routes filters in the broker's ACL",
    };
  } finally {
    await client.endAsync(true).catch(() => undefined);
  }
}

/** The error code of listening on host:port, or undefined when it could (and was closed again). */
function tryListen(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    server.listen(port, host, () => server.close(() => resolve(undefined)));
  });
}

/** Gateways whose retained `<prefix>/<gateway>/status` is `online` on the broker `client` is connected to. */
async function onlineGateways(client: MqttClient, prefix: string): Promise<string[]> {
  const online = new Set<string>();
  client.on('message', (topic, payload, packet) => {
    const gateway = topic.slice(prefix.length + 1, -'/status'.length);
    if (packet.retain && payload.toString() === 'online') online.add(gateway);
  });
  await client.subscribeAsync(`${prefix}/+/status`, { qos: 0 });
  await new Promise((resolve) => setTimeout(resolve, STATUS_MS));
  return [...online];
}

async function embeddedBroker(config: Config, signal: AbortSignal): Promise<CheckResult> {
  const { host, port, username, password } = config.broker;
  const where = `${host}:${port}`;
  const moveFix = `set broker.port (OUTPOST_BROKER_PORT) to a free port`;
  const code = await tryListen(host, port);
  if (code === undefined) return { status: 'ok', message: `embedded broker: ${where} is free to listen on` };
  if (code === 'EACCES') {
    return {
      status: 'fail',
      message: `embedded broker: may not listen on ${where} (ports below 1024 need root or CAP_NET_BIND_SERVICE)`,
      fix: `${moveFix} of 1024 or more, e.g. 1883`,
    };
  }
  if (code === 'EADDRNOTAVAIL') {
    return {
      status: 'fail',
      message: `embedded broker: ${host} is not an address of this machine`,
      fix: 'set broker.host (OUTPOST_BROKER_HOST) to 127.0.0.1, 0.0.0.0 or an address of this board',
    };
  }
  if (code !== 'EADDRINUSE') {
    return { status: 'fail', message: `embedded broker: cannot listen on ${where}: ${code}`, fix: moveFix };
  }
  const local = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const url = `mqtt://${local.includes(':') ? `[${local}]` : local}:${port}`;
  const connected = await connectOnce(url, { username, password }, signal);
  if ('error' in connected) {
    return {
      status: 'fail',
      message: `embedded broker: ${where} is taken by another program (${explain(connected.error, url).message})`,
      fix: `stop it (\`ss -ltnp 'sport = :${port}'\` names it), or ${moveFix}`,
    };
  }
  const prefix = config.mqtt.topicPrefix;
  let gateways: string[];
  try {
    gateways = await onlineGateways(connected.client, prefix);
  } finally {
    await connected.client.endAsync(true).catch(() => undefined);
  }
  if (gateways.length > 0) {
    const mine = gateways.includes(config.gatewayId) ? config.gatewayId : gateways.join(', ');
    return {
      status: 'ok',
      message: `embedded broker: ${where} is served by a running outpost (${mine} online)`,
    };
  }
  return {
    status: 'fail',
    message: `embedded broker: ${where} is taken by another MQTT broker (no ${prefix}/+/status online there)`,
    fix: `use that broker (OUTPOST_MQTT_URL=${url}), or stop it, or ${moveFix}`,
  };
}

export const brokerCheck: DoctorCheck = {
  id: 'broker',
  timeoutMs: 10_000,
  timeoutFix:
    'the broker connection hangs: check the broker host, port and firewall by hand (`mosquitto_sub -h HOST -p PORT -t x`)',
  run: ({ config, signal }) =>
    config.mqtt.url ? externalBroker(config, config.mqtt.url, signal) : embeddedBroker(config, signal),
};
