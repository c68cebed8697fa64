/**
 * The publish loop of `outpost simulate`: sensor messages at a steady rate and media (camera frames, audio
 * clips) on each source's clock, within the broker's window, until aborted, a message count or a duration
 * is reached.
 */

import type { SensorScenario, SimulatedMessage } from './sensorScenario.js';
import type { Connection } from './simulateConnection.js';
import { describe, redact } from './simulateConnection.js';

export interface SimulationSummary {
  /**
   * messages the broker acknowledged (QoS > 0) or that were written to the socket (QoS 0), sensor messages,
   * frames and clips together
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
  /** how many of the sent messages were audio clips */
  clips: number;
  /** WAV bytes of those clips */
  clipBytes: number;
  /**
   * clip ticks that published nothing because the source's previous clip was still being generated, it
   * already had 2 clips generating or unacknowledged, or the broker window was full
   */
  skippedClips: number;
  /** wall time from the first publish until the last acknowledgement, ms */
  elapsedMs: number;
  /** sent / elapsed seconds */
  ratePerSecond: number;
}

/** A generated payload of a {@link MediaTrack}. */
export interface MediaItem {
  topic: string;
  payload: Buffer;
}

/**
 * Large generated payloads per source (a camera's frames, a microphone's clips), one every 1 / `perSecond`
 * s from the start. They are few and each tick a source misses is lost: a tick that cannot go out at once is
 * skipped (and counted), never queued.
 */
export interface MediaTrack {
  kind: 'frame' | 'clip';
  /** source names; the position is the `source` argument of `render` */
  sources: readonly string[];
  /** ticks per second per source (> 0) */
  perSecond: number;
  /** most items per source being rendered or awaiting their ack */
  maxInFlight: number;
  render(source: number, index: number, signal: AbortSignal): Promise<MediaItem>;
}

export interface PublishSettings {
  url: string;
  rate: number;
  qos: 0 | 1 | 2;
  count?: number;
  durationSeconds?: number;
  /** absent when no sensors run */
  sensors: SensorScenario | undefined;
  /** in the order they are served each tick */
  media: readonly MediaTrack[];
}

type Counts = Omit<SimulationSummary, 'elapsedMs' | 'ratePerSecond'>;

const TALLY = {
  frame: { items: 'frames', bytes: 'frameBytes', skipped: 'skippedFrames' },
  clip: { items: 'clips', bytes: 'clipBytes', skipped: 'skippedClips' },
} as const;

/** Per media source: where its clock stands and what it has outstanding. */
interface SourceState {
  /** index of the next tick, i.e. ticks so far */
  nextTick: number;
  rendering: boolean;
  /** items being rendered or awaiting their ack */
  pending: number;
}

/** Upper bound on un-acked publishes, so a slow broker throttles us instead of growing memory. */
const MAX_IN_FLIGHT = 1_000;
/** How long to wait for outstanding acks at the end before giving up on them. */
const DRAIN_TIMEOUT_MS = 5_000;
const PROGRESS_INTERVAL_MS = 1_000;
/** Timer period bounds: short enough for smooth high rates, long enough not to spin at low rates. */
const MIN_TICK_MS = 4;
const MAX_TICK_MS = 50;

/**
 * Publishes until `signal` aborts or `count` / `durationSeconds` is reached, then waits (bounded) for
 * outstanding acks. `onProgress` is called about once a second. Resolves with what the broker confirmed;
 * rejects when the broker refuses a publish or a render fails. The caller ends the client.
 */
export function publishSimulation(
  connection: Connection,
  settings: PublishSettings,
  signal: AbortSignal,
  onProgress: ((s: SimulationSummary) => void) | undefined,
): Promise<SimulationSummary> {
  const { client } = connection;
  const { rate, qos, sensors, media } = settings;
  const limit = settings.count ?? Number.POSITIVE_INFINITY;
  const deadlineMs =
    settings.durationSeconds === undefined ? Number.POSITIVE_INFINITY : settings.durationSeconds * 1000;
  const perSecond =
    (sensors === undefined ? 0 : rate) + media.reduce((sum, track) => sum + track.perSecond, 0);
  const tickMs = Math.min(MAX_TICK_MS, Math.max(MIN_TICK_MS, 1000 / perSecond));
  // Room to catch up after a late timer without flooding the socket in one go.
  const maxBurst = Math.max(64, Math.ceil((rate * tickMs) / 1000) * 4);
  const states: SourceState[][] = media.map((track) =>
    track.sources.map(() => ({ nextTick: 0, rendering: false, pending: 0 })),
  );

  const startedAt = performance.now();
  const startEpochMs = Date.now();
  /** sensor messages and media items handed to the client or being rendered, for `count` */
  let issued = 0;
  /** sensor messages handed to the client, for the sensor pace and timestamps */
  let sensorIssued = 0;
  const counts = emptyCounts();
  /** publishes awaiting their ack plus items being rendered: each will take a slot of the broker window */
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

    const publishItem = (track: MediaTrack, state: SourceState, source: number, index: number) => {
      const tally = TALLY[track.kind];
      inFlight++;
      issued++;
      state.pending++;
      state.rendering = true;
      const settle = () => {
        state.pending--;
        release();
      };
      track.render(source, index, signal).then(
        (item) => {
          state.rendering = false;
          // Items rendered after an abort or a failure are dropped; after `count` or the duration they
          // still go out, since they were already counted as issued.
          if (finished || signal.aborted || failure !== undefined) {
            settle();
            return;
          }
          client.publish(item.topic, item.payload, { qos }, (error) => {
            if (error) publishFailed(item.topic, error);
            else {
              counts.sent++;
              counts[tally.items]++;
              counts[tally.bytes] += item.payload.length;
            }
            settle();
          });
        },
        (error: unknown) => {
          state.rendering = false;
          // An abort cuts renders short (e.g. a speech synthesiser still running): that is no failure.
          if (!signal.aborted) {
            const name = track.sources[source];
            fail(
              new Error(`cannot render ${track.kind} ${index} of ${name}: ${describe(error)}`, {
                cause: error,
              }),
            );
          }
          settle();
        },
      );
    };

    /** Publishes each source's latest due item; a tick that cannot go out now is skipped, never queued. */
    const pumpMedia = (track: MediaTrack, trackStates: SourceState[], elapsed: number, window: number) => {
      const skipped = TALLY[track.kind].skipped;
      const due = Math.floor((elapsed * track.perSecond) / 1000) + 1;
      for (const [source, state] of trackStates.entries()) {
        if (due <= state.nextTick || issued >= limit) continue;
        // Ticks a late timer jumped over are skipped too: the scene follows the wall clock.
        counts[skipped] += due - 1 - state.nextTick;
        state.nextTick = due;
        if (state.rendering || state.pending >= track.maxInFlight || inFlight >= window) {
          counts[skipped]++;
          continue;
        }
        publishItem(track, state, source, due - 1);
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
        // Media first: there are few items, and each tick they miss is lost.
        for (const [i, track] of media.entries()) pumpMedia(track, states[i]!, elapsed, window);
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

export function emptySummary(): SimulationSummary {
  return summarize(emptyCounts(), 0);
}

function emptyCounts(): Counts {
  return {
    sent: 0,
    anomalies: 0,
    frames: 0,
    frameBytes: 0,
    skippedFrames: 0,
    clips: 0,
    clipBytes: 0,
    skippedClips: 0,
  };
}

function summarize(counts: Counts, elapsedMs: number): SimulationSummary {
  return {
    ...counts,
    elapsedMs,
    ratePerSecond: elapsedMs > 0 ? (counts.sent * 1000) / elapsedMs : 0,
  };
}
