/**
 * Shell of `outpost simulate`: publishes the traffic of a {@link SensorScenario} at a steady rate, the
 * frames of a {@link CameraScenario} at each camera's fps and the clips of an {@link AudioScenario} every
 * clip interval to an MQTT broker, until aborted, a message count or a duration is reached.
 */

import { AudioScenario, type SpeechEngine } from './audioScenario.js';
import { CameraScenario } from './cameraScenario.js';
import { SensorScenario, type SensorScenarioOptions } from './sensorScenario.js';
import { type BrokerCredentials, connect, endClient } from './simulateConnection.js';
import {
  emptySummary,
  type MediaTrack,
  publishSimulation,
  type SimulationSummary,
} from './simulatePublish.js';

export type { SimulationSummary } from './simulatePublish.js';

export interface SimulateOptions extends SensorScenarioOptions, BrokerCredentials {
  /**
   * Number of simulated sensor devices (integer >= 0; 0 runs cameras and audio only). Default 3.
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
  /**
   * Number of simulated audio sources (integer >= 0), named `<audioPrefix>-1..N`, publishing 16-bit PCM WAV
   * on `audio/<source>/clip`: speech, machine hum and near-silence. Default 0.
   */
  audio?: number;
  /** Audio source name prefix; must not contain `/`, `+` or `#`. Default `'mic'`. */
  audioPrefix?: string;
  /** Length of each clip in seconds (0.5-600). Default 10. */
  clipSeconds?: number;
  /** Seconds between the clips of a source (> 0, fractions allowed). Default 30. */
  clipInterval?: number;
  /** Sample rate of the clips in Hz (8000-48000). Default 16000. */
  audioRate?: number;
  /** Channels of the clips, 1 or 2. Default 1. */
  audioChannels?: 1 | 2;
  /**
   * Who speaks in the clips: espeak-ng when installed, else a synthetic voice (`'auto'`), or one of them
   * for sure. Default `'auto'`. See `AudioScenarioOptions.speech`.
   */
  audioSpeech?: SpeechEngine;
  /** Broker URL (`mqtt://`, `mqtts://`, `ws://`, `wss://`). Default `'mqtt://127.0.0.1:1883'`. */
  url?: string;
  /** Sensor messages per second in total, spread evenly across ticks (> 0). Default 10. */
  rate?: number;
  /** Stop after this many messages, sensor messages, frames and clips together (integer >= 0). Default: none. */
  count?: number;
  /** Stop after this many seconds (> 0). Default: unbounded. */
  durationSeconds?: number;
  /** QoS of the publishes, frames and clips included. Default 1. */
  qos?: 0 | 1 | 2;
}

const DEFAULT_URL = 'mqtt://127.0.0.1:1883';
/**
 * Upper bound on a camera's frames being rendered or awaiting their ack: a frame is large, so a slow broker
 * makes the camera skip ticks (counted) rather than queue them.
 */
const MAX_FRAMES_IN_FLIGHT = 3;
/** The same bound for an audio source's clips, larger still (a 10 s 16 kHz mono clip is 320 kB). */
const MAX_CLIPS_IN_FLIGHT = 2;

/**
 * Connects to the broker and publishes the sensor messages at `options.rate`, each camera's frames at
 * `options.fps` and each audio source's clips every `options.clipInterval` s until `signal` aborts or
 * `count` / `durationSeconds` is reached, then waits (bounded) for outstanding acks and disconnects.
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
  const audioCount = options.audio ?? 0;
  if (!Number.isInteger(cameraCount) || cameraCount < 0) {
    throw new RangeError(`cameras must be an integer >= 0, got ${cameraCount}`);
  }
  if (!Number.isInteger(audioCount) || audioCount < 0) {
    throw new RangeError(`audio must be an integer >= 0, got ${audioCount}`);
  }
  const clipInterval = options.clipInterval ?? 30;
  if (!(clipInterval > 0 && Number.isFinite(clipInterval))) {
    throw new RangeError(`clipInterval must be a positive number, got ${clipInterval}`);
  }
  if (devices === 0 && cameraCount === 0 && audioCount === 0) {
    throw new RangeError('nothing to simulate: devices, cameras and audio are all 0');
  }
  // Built before connecting so bad scenario options fail without touching the network.
  const sensors = devices === 0 ? undefined : new SensorScenario({ ...options, devices });
  const media: MediaTrack[] = [];
  if (cameraCount > 0) {
    const cameras = new CameraScenario({
      cameras: cameraCount,
      prefix: options.cameraPrefix,
      width: options.width,
      height: options.height,
      fps: options.fps,
      seed: options.seed,
      quality: options.jpegQuality,
      noise: options.cameraNoise,
    });
    media.push({
      kind: 'frame',
      sources: cameras.cameras,
      perSecond: cameras.fps,
      maxInFlight: MAX_FRAMES_IN_FLIGHT,
      render: async (camera, index) => {
        const frame = await cameras.frame(camera, index);
        return { topic: frame.topic, payload: frame.jpeg };
      },
    });
  }
  if (audioCount > 0) {
    const audio = new AudioScenario({
      sources: audioCount,
      prefix: options.audioPrefix,
      clipSeconds: options.clipSeconds,
      sampleRate: options.audioRate,
      channels: options.audioChannels,
      seed: options.seed,
      speech: options.audioSpeech,
    });
    media.push({
      kind: 'clip',
      sources: audio.sources,
      perSecond: 1 / clipInterval,
      maxInFlight: MAX_CLIPS_IN_FLIGHT,
      render: async (source, index, renderSignal) => {
        const clip = await audio.clip(source, index, renderSignal);
        return { topic: clip.topic, payload: clip.wav };
      },
    });
  }

  if (signal.aborted || options.count === 0) return emptySummary();
  const connection = await connect(url, options, signal);
  if (connection === undefined) return emptySummary();
  try {
    return await publishSimulation(
      connection,
      { url, rate, qos, count: options.count, durationSeconds: options.durationSeconds, sensors, media },
      signal,
      onProgress,
    );
  } finally {
    await endClient(connection.client);
  }
}
