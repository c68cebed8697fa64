/**
 * Shell of `outpost simulate`: publishes the traffic of a {@link SensorScenario} at a steady rate and the
 * frames of a {@link CameraScenario} at each camera's fps to an MQTT broker, until aborted, a message count
 * or a duration is reached.
 */

import type { IClientOptions, IConnackPacket, MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import { CameraScenario } from './cameraScenario.js';
import { SensorScenario, type SensorScenarioOptions, type SimulatedMessage } from './sensorScenario.js';

export interface SimulateOptions extends SensorScenarioOptions {
  /**
   * Number of simulated sensor devices (integer >= 0; 0 runs cameras only). Default 3.
   * See {@link SensorScenarioOptions.devices}.
   */
  devices?: number;
  /**
   * Number of simulated cameras (integer >= 0), named `<cameraPrefix>-1..N`, publishing JPEG on
   * `cameras/<camera>/frame`. Default 0.
   */
  cameras?: number;
  /** Camera name prefix; must not contain `/`, `+` or `#`. Default `'cam'`. */
  cameraPrefix?: string;
  /** Frames per second per camera (> 0, fractions allowed, e.g. 0.2). Default 1. */
  fps?: number;
  /** Frame width in pixels. Default 1280. */
  width?: number;
  /** Frame height in pixels. Default 720. */
  height?: number;
  /** JPEG quality of the frames, 1-100. Default 80. */
  jpegQuality?: number;
  /** Per-pixel sensor noise of the frames, standard deviation in grey levels. Default 0 (off). */
  cameraNoise?: number;
  /** Broker URL (`mqtt://`, `mqtts://`, `ws://`, `wss://`). Default `'mqtt://127.0.0.1:1883'`. */
  url?: string;
  /** Username for the broker; default none. */
  username?: string;
  /** Password for the broker; default none. */
  password?: string;
  /** Sensor messages per second in total, spread evenly across ticks (> 0). Default 10. */
  rate?: number;
  /** Stop after this many messages, sensor messages and frames together (integer >= 0). Default: none. */
  count?: number;
  /** Stop after this many seconds (> 0). Default: unbounded. */
  durationSeconds?: number;
  /** QoS of the publishes, frames included. Default 1. */
  qos?: 0 | 1 | 2;
}

export interface SimulationSummary {
  /**
   * messages the broker acknowledged (QoS > 0) or that were written to the socket (QoS 0), sensor messages
   * and frames together
   */
  sent: number;
  /** how many of the sent messages carried an injected anomaly */
  anomalies: number;
  /** how many of the sent messages were camera frames */
  frames: number;
  /** JPEG bytes of those frames */
  frameBytes: number;
  /**
   * frame ticks that published nothing because the camera's previous frame was still being rendered, it
   * already had 3 frames rendering or unacknowledged, or the broker window was full
   */
  skippedFrames: number;
  /** wall time from the first publish until the last acknowledgement, ms */
  elapsedMs: number;
  /** sent / elapsed seconds */
  ratePerSecond: number;
}

const DEFAULT_URL = 'mqtt://127.0.0.1:1883';
const CONNECT_TIMEOUT_MS = 5_000;
/** Upper bound on un-acked publishes, so a slow broker throttles us instead of growing memory. */
const MAX_IN_FLIGHT = 1_000;
/**
 * Upper bound on a camera's frames being rendered or awaiting their ack: a frame is large, so a slow broker
 * makes the camera skip ticks (counted) rather than queue them.
 */
const MAX_FRAMES_IN_FLIGHT = 3;
/** How long to wait for outstanding acks at the end before giving up on them. */
const DRAIN_TIMEOUT_MS = 5_000;
const END_TIMEOUT_MS = 2_000;
const PROGRESS_INTERVAL_MS = 1_000;
/** Timer period bounds: short enough for smooth high rates, long enough not to spin at low rates. */
const MIN_TICK_MS = 4;
const MAX_TICK_MS = 50;

/**
 * Connects to the broker and publishes the sensor messages at `options.rate` and each camera's frames at
 * `options.fps` until `signal` aborts or `count` / `durationSeconds` is reached, then waits (bounded) for
 * outstanding acks and disconnects.
 * `onProgress` is called about once a second. Resolves with what the broker confirmed; rejects when the
 * broker cannot be reached or refuses a publish.
 */
export async function runSimulation(
  options: SimulateOptions,
  signal: AbortSignal,
  onProgress?: (s: SimulationSummary) => void,
): Promise<SimulationSummary> {
  const url = options.url ?? DEFAULT_URL;
  const rate = options.rate ?? 10;
  const qos = options.qos ?? 1;
  if (!(rate > 0 && Number.isFinite(rate)))
    throw new RangeError(`rate must be a positive number, got ${rate}`);
  if (options.count !== undefined && !(Number.isInteger(options.count) && options.count >= 0)) {
    throw new RangeError(`count must be an integer >= 0, got ${options.count}`);
  }
  if (options.durationSeconds !== undefined && !(options.durationSeconds > 0)) {
    throw new RangeError(`durationSeconds must be > 0, got ${options.durationSeconds}`);
  }
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new RangeError(`qos must be 0, 1 or 2, got ${qos}`);
  const devices = options.devices ?? 3;
  const cameraCount = options.cameras ?? 0;
  if (!Number.isInteger(cameraCount) || cameraCount < 0) {
    throw new RangeError(`cameras must be an integer >= 0, got ${cameraCount}`);
  }
  if (devices === 0 && cameraCount === 0) {
    throw new RangeError('nothing to simulate: devices and cameras are both 0');
  }
  // Built before connecting so bad scenario options fail without touching the network.
  const sensors = devices === 0 ? undefined : new SensorScenario({ ...options, devices });
  const cameras =
    cameraCount === 0
      ? undefined
      : new CameraScenario({
          cameras: cameraCount,
          prefix: options.cameraPrefix,
          width: options.width,
          height: options.height,
          fps: options.fps,
          seed: options.seed,
          quality: options.jpegQuality,
          noise: options.cameraNoise,
        });

  if (signal.aborted || options.count === 0) return summarize(emptyCounts(), 0);
  const connection = await connect(url, options, signal);
  if (connection === undefined) return summarize(emptyCounts(), 0);
  try {
    return await publishLoop(
      connection,
      {
        url,
        rate,
        qos,
        count: options.count,
        durationSeconds: options.durationSeconds,
        sensors,
        cameras,
      },
      signal,
      onProgress,
    );
  } finally {
    await endClient(connection.client);
  }
}

interface Connection {
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
async function connect(
  url: string,
  options: SimulateOptions,
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
  options: SimulateOptions,
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

interface LoopSettings {
  url: string;
  rate: number;
  qos: 0 | 1 | 2;
  count?: number;
  durationSeconds?: number;
  /** absent when only cameras run */
  sensors: SensorScenario | undefined;
  /** absent when only sensors run */
  cameras: CameraScenario | undefined;
}

interface Counts {
  sent: number;
  anomalies: number;
  frames: number;
  frameBytes: number;
  skippedFrames: number;
}

/** Per camera: where its frame clock stands and what it has outstanding. */
interface CameraState {
  /** index of the next frame tick, i.e. ticks so far */
  nextTick: number;
  rendering: boolean;
  /** frames being rendered or awaiting their ack */
  pending: number;
}

function publishLoop(
  connection: Connection,
  settings: LoopSettings,
  signal: AbortSignal,
  onProgress: ((s: SimulationSummary) => void) | undefined,
): Promise<SimulationSummary> {
  const { client } = connection;
  const { rate, qos, sensors, cameras } = settings;
  const limit = settings.count ?? Number.POSITIVE_INFINITY;
  const deadlineMs =
    settings.durationSeconds === undefined ? Number.POSITIVE_INFINITY : settings.durationSeconds * 1000;
  const perSecond = (sensors === undefined ? 0 : rate) + (cameras === undefined ? 0 : cameras.fps);
  const tickMs = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, 1000 / perSecond));
  // Room to catch up after a late timer without flooding the socket in one go.
  const maxBurst = Math.max(64, Math.ceil((rate * tickMs) / 1000) * 4);
  const cameraStates: CameraState[] = (cameras?.cameras ?? []).map(() => ({
    nextTick: 0,
    rendering: false,
    pending: 0,
  }));

  const startedAt = performance.now();
  const startEpochMs = Date.now();
  /** sensor messages and frames handed to the client or being rendered, for `count` */
  let issued = 0;
  /** sensor messages handed to the client, for the sensor pace and timestamps */
  let sensorIssued = 0;
  const counts = emptyCounts();
  /** publishes awaiting their ack plus frames being rendered: each will take a slot of the broker window */
  let inFlight = 0;
  let queue: SimulatedMessage[] = [];
  let queueIndex = 0;
  let stopping = false;
  let finished = false;
  /** the last pump published less than was due because of the in-flight window */
  let windowFull = false;
  let failure: Error | undefined;

  const summary = () => summarize(counts, performance.now() - startedAt);

  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let drainTimer: NodeJS.Timeout | undefined;
    const progressTimer =
      onProgress === undefined
        ? undefined
        : setInterval(() => {
            try {
              onProgress(summary());
            } catch (error) {
              fail(error);
            }
          }, PROGRESS_INTERVAL_MS);

    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(drainTimer);
      client.off('close', finish);
      if (progressTimer !== undefined) clearInterval(progressTimer);
      if (failure !== undefined) reject(failure);
      else resolve(summary());
    };

    const stop = () => {
      if (stopping) return;
      stopping = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', stop);
      // Acks from a broker that is gone never come, and Ctrl-C should not hang on them: the summary then
      // reports what was confirmed.
      if (inFlight === 0 || !client.connected) {
        finish();
        return;
      }
      client.once('close', finish);
      drainTimer = setTimeout(finish, DRAIN_TIMEOUT_MS);
    };

    const fail = (error: unknown) => {
      failure ??= error instanceof Error ? error : new Error(describe(error));
      stop();
    };

    /** A slot of the window is free again: end a drain, or refill at once if the last pump was held back. */
    const release = () => {
      inFlight--;
      if (stopping) {
        if (inFlight === 0) finish();
      } else if (windowFull) {
        // A small broker window (mosquitto's Receive Maximum is 20) would cap the rate at window/tick
        // if refills waited for the timer; an ack frees a slot, so refill right away.
        windowFull = false;
        schedule(0);
      }
    };

    const nextMessage = (sensorScenario: SensorScenario): SimulatedMessage => {
      if (queueIndex >= queue.length) {
        // Scheduled rather than actual time, so sample timestamps stay evenly spaced even when catching up.
        queue = sensorScenario.tick(startEpochMs + Math.round((sensorIssued * 1000) / rate));
        queueIndex = 0;
      }
      const message = queue[queueIndex++];
      if (message === undefined) throw new Error('scenario produced an empty tick');
      return message;
    };

    const publishFailed = (topic: string, error: Error) => {
      // After stopping, errors are the client giving up on unsent messages; they are simply not counted.
      if (stopping) return;
      fail(
        new Error(`publish to ${topic} on ${redact(settings.url)} failed: ${error.message}`, {
          cause: error,
        }),
      );
    };

    const publish = (message: SimulatedMessage) => {
      inFlight++;
      issued++;
      sensorIssued++;
      client.publish(message.topic, message.payload, { qos }, (error) => {
        if (error) publishFailed(message.topic, error);
        else {
          counts.sent++;
          if (message.anomaly) counts.anomalies++;
        }
        release();
      });
    };

    const publishFrame = (scenario: CameraScenario, camera: number, index: number) => {
      const state = cameraStates[camera]!;
      inFlight++;
      issued++;
      state.pending++;
      state.rendering = true;
      const settle = () => {
        state.pending--;
        release();
      };
      scenario.frame(camera, index).then(
        (frame) => {
          state.rendering = false;
          // Frames rendered after an abort or a failure are dropped; after `count` or the duration they
          // still go out, since they were already counted as issued.
          if (finished || signal.aborted || failure !== undefined) {
            settle();
            return;
          }
          client.publish(frame.topic, frame.jpeg, { qos }, (error) => {
            if (error) publishFailed(frame.topic, error);
            else {
              counts.sent++;
              counts.frames++;
              counts.frameBytes += frame.jpeg.length;
            }
            settle();
          });
        },
        (error: unknown) => {
          state.rendering = false;
          fail(
            new Error(`cannot render frame ${index} of ${scenario.cameras[camera]}: ${describe(error)}`, {
              cause: error,
            }),
          );
          settle();
        },
      );
    };

    /** Publishes each camera's latest due frame; a tick that cannot go out now is skipped, never queued. */
    const pumpFrames = (scenario: CameraScenario, elapsed: number, window: number) => {
      const due = Math.floor((elapsed * scenario.fps) / 1000) + 1;
      for (const [camera, state] of cameraStates.entries()) {
        if (due <= state.nextTick || issued >= limit) continue;
        // Ticks a late timer jumped over are skipped too: the scene follows the wall clock.
        counts.skippedFrames += due - 1 - state.nextTick;
        state.nextTick = due;
        if (state.rendering || state.pending >= MAX_FRAMES_IN_FLIGHT || inFlight >= window) {
          counts.skippedFrames++;
          continue;
        }
        publishFrame(scenario, camera, due - 1);
      }
    };

    const pumpSensors = (scenario: SensorScenario, elapsed: number, window: number) => {
      // Due count from elapsed time (+1 so the first message goes out at once): late timers catch up.
      const due = Math.min(limit - issued, Math.floor((elapsed * rate) / 1000) + 1 - sensorIssued);
      let budget = Math.min(due, maxBurst, window - inFlight);
      windowFull = window - inFlight < Math.min(due, maxBurst);
      while (budget-- > 0 && !stopping) publish(nextMessage(scenario));
    };

    const pump = () => {
      const elapsed = performance.now() - startedAt;
      if (issued >= limit || elapsed >= deadlineMs) {
        stop();
        return;
      }
      const window = qos === 0 ? MAX_IN_FLIGHT : Math.min(MAX_IN_FLIGHT, connection.receiveMaximum);
      try {
        // Frames first: there are few of them, and each tick they miss is lost.
        if (cameras !== undefined) pumpFrames(cameras, elapsed, window);
        if (sensors !== undefined && !stopping) pumpSensors(sensors, elapsed, window);
      } catch (error) {
        fail(error);
        return;
      }
      if (stopping) return;
      if (issued >= limit) {
        stop();
        return;
      }
      schedule(tickMs);
    };

    // The single place that arms the timer, so an ack-triggered refill and the regular tick can never
    // leave two pump chains running.
    const schedule = (delayMs: number) => {
      clearTimeout(timer);
      timer = setTimeout(pump, delayMs);
    };

    signal.addEventListener('abort', stop, { once: true });
    pump();
  });
}

function emptyCounts(): Counts {
  return { sent: 0, anomalies: 0, frames: 0, frameBytes: 0, skippedFrames: 0 };
}

function summarize(counts: Counts, elapsedMs: number): SimulationSummary {
  return {
    ...counts,
    elapsedMs,
    ratePerSecond: elapsedMs > 0 ? (counts.sent * 1000) / elapsedMs : 0,
  };
}

/** Ends the client, forcing it when a graceful DISCONNECT does not complete in time. */
async function endClient(client: MqttClient): Promise<void> {
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
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === '') return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
