#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { createLogger } from '../common/index.js';
import { ConfigError, loadConfig, printConfig } from '../config/index.js';
import { Daemon, SdNotify, VERSION } from '../daemon/index.js';
import { registerDoctorCommand } from './doctor.js';
import { registerModelCommands } from './model.js';
import { registerQueryCommands } from './query.js';
import { runSimulation } from './simulate.js';

/** Exit codes: 0 ok, 1 failure while running or stopping, 2 bad configuration or usage. */
const EXIT_CONFIG = 2;

const program = new Command('outpost')
  .description('Field-gateway daemon: MQTT sensors in, local findings out, stored and published.')
  .version(VERSION);

program
  .command('start')
  .description('start the gateway (embedded broker unless OUTPOST_MQTT_URL or mqtt.url is set)')
  .option('-c, --config <file>', 'config file (default: $OUTPOST_CONFIG, else ./outpost.yaml if present)')
  .option('--print-config', 'print the effective configuration (secrets masked) and exit')
  .action(async (opts: { config?: string; printConfig?: boolean }) => {
    let config: ReturnType<typeof loadConfig>;
    try {
      config = loadConfig({ file: opts.config });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      process.stderr.write(`outpost: ${error.message}\n`);
      process.exit(EXIT_CONFIG);
    }
    if (opts.printConfig) {
      process.stdout.write(printConfig(config));
      return;
    }
    const logger = createLogger({ level: config.log.level, format: config.log.format });
    const starting = new AbortController();
    let daemon: Daemon | undefined;
    // Under systemd (Type=notify): READY=1, WATCHDOG=1, STATUS=, STOPPING=1. Elsewhere it does nothing.
    const notify = new SdNotify({
      env: process.env,
      logger,
      status: () => daemon?.statusLine() ?? 'starting',
    });
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals += 1;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      logger.info({ signal }, 'shutting down');
      void notify.stopping();
      starting.abort();
      // A stop that hangs must not keep a supervisor waiting forever.
      setTimeout(() => {
        logger.error('stop took longer than 10 s; exiting');
        process.exit(1);
      }, 10_000).unref();
      void daemon?.stop().then((code) => process.exit(code));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      daemon = await Daemon.start({ config, logger }, starting.signal);
      // READY once the session is up too; an external broker that is down does not hold the start (the
      // gateway reconnects on its own, and STATUS says so).
      if (!(await daemon.waitConnected(READY_WAIT_MS)))
        logger.warn('ready without the MQTT broker (reconnecting)');
      await notify.ready();
    } catch (error) {
      if (starting.signal.aborted) process.exit(0);
      logger.fatal({ err: error }, 'cannot start');
      process.exit(1);
    }
  });

/** How long READY=1 waits for the MQTT session, ms. */
const READY_WAIT_MS = 15_000;

const positiveInt = (name: string) => (text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};
const nonNegativeInt = (name: string) => (text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be an integer >= 0`);
  return n;
};
const positiveNumber = (name: string) => (text: string) => {
  const n = Number(text);
  if (!(n > 0 && Number.isFinite(n))) throw new InvalidArgumentError(`${name} must be a positive number`);
  return n;
};
const resolution = (text: string) => {
  const match = /^(\d+)x(\d+)$/i.exec(text.trim());
  const width = Number(match?.[1]);
  const height = Number(match?.[2]);
  if (!(width >= 16 && width <= 8192 && height >= 16 && height <= 8192)) {
    throw new InvalidArgumentError('must be WIDTHxHEIGHT, each from 16 to 8192 pixels, e.g. 1280x720');
  }
  return { width, height };
};
const jpegQuality = (text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 100)
    throw new InvalidArgumentError('must be an integer from 1 to 100');
  return n;
};
const sampleRate = (text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 8000 || n > 48000) {
    throw new InvalidArgumentError('must be an integer from 8000 to 48000 Hz, e.g. 16000');
  }
  return n;
};
const fraction = (text: string) => {
  const n = Number(text);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('must be between 0 and 1');
  return n;
};

program
  .command('simulate')
  .description(
    'publish realistic sensor traffic (with anomalies and noise), camera frames (objects that cross, ' +
      'come and go, or stay; long quiet stretches) and audio clips (speech, machine hum, silence) to a broker',
  )
  .option('-u, --url <url>', 'broker URL', process.env.OUTPOST_MQTT_URL ?? 'mqtt://127.0.0.1:1883')
  .option('--username <name>', 'broker user name')
  .option('--password <password>', 'broker password')
  .option(
    '-d, --devices <n>',
    'simulated sensor devices (0: cameras and audio only)',
    nonNegativeInt('devices'),
    3,
  )
  .option('--prefix <name>', 'device name prefix', 'pump')
  .option('-m, --metrics <list>', 'comma-separated metrics', 'temperature,pressure,vibration')
  .option('-r, --rate <n>', 'sensor messages per second in total', positiveInt('rate'), 10)
  .option(
    '-n, --count <n>',
    'stop after this many messages (sensor messages, frames and clips)',
    positiveInt('count'),
  )
  .option('--duration <seconds>', 'stop after this many seconds', positiveInt('duration'))
  .option('--anomaly-rate <p>', 'probability that a sample is an injected spike', fraction, 0.001)
  .option('--noise <fraction>', 'noise as a fraction of the metric span', fraction, 0.02)
  .addOption(
    new Option('--shape <shape>', 'payload shape')
      .choices(['value', 'number', 'object', 'mixed'])
      .default('value'),
  )
  .addOption(new Option('--qos <qos>', 'QoS of the publishes').choices(['0', '1', '2']).default('1'))
  .option(
    '--cameras <n>',
    'simulated cameras, publishing JPEG on cameras/<camera>/frame',
    nonNegativeInt('cameras'),
    0,
  )
  .option('--camera-prefix <name>', 'camera name prefix (cameras are <prefix>-1..N)', 'cam')
  .option('--fps <n>', 'frames per second per camera (fractions allowed, e.g. 0.2)', positiveNumber('fps'), 1)
  .addOption(
    new Option('--resolution <WxH>', 'frame size in pixels')
      .argParser(resolution)
      .default({ width: 1280, height: 720 }, '1280x720'),
  )
  .option('--jpeg-quality <q>', 'JPEG quality of the frames (1-100)', jpegQuality, 80)
  .option(
    '--audio <n>',
    'simulated audio sources, publishing WAV clips on audio/<source>/clip',
    nonNegativeInt('audio'),
    0,
  )
  .option('--audio-prefix <name>', 'audio source name prefix (sources are <prefix>-1..N)', 'mic')
  .option('--clip-seconds <s>', 'length of each clip in seconds', positiveNumber('clip-seconds'), 10)
  .option('--clip-interval <s>', 'seconds between the clips of a source', positiveNumber('clip-interval'), 30)
  .option('--audio-rate <hz>', 'sample rate of the clips (8000-48000)', sampleRate, 16000)
  .addOption(new Option('--audio-channels <n>', 'channels of the clips').choices(['1', '2']).default('1'))
  .addOption(
    new Option('--audio-speech <engine>', 'who speaks: espeak-ng if installed, else synthetic (auto)')
      .choices(['auto', 'espeak-ng', 'synthetic'])
      .default('auto'),
  )
  .option('--seed <n>', 'random seed', positiveInt('seed'), 1)
  .action(async (opts) => {
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    process.once('SIGTERM', () => controller.abort());
    let lastLine = 0;
    const summary = await runSimulation(
      {
        url: opts.url,
        username: opts.username,
        password: opts.password,
        devices: opts.devices,
        devicePrefix: opts.prefix,
        metrics: String(opts.metrics)
          .split(',')
          .map((m: string) => m.trim())
          .filter(Boolean),
        rate: opts.rate,
        count: opts.count,
        durationSeconds: opts.duration,
        anomalyRate: opts.anomalyRate,
        noise: opts.noise,
        shape: opts.shape,
        qos: Number(opts.qos) as 0 | 1 | 2,
        seed: opts.seed,
        cameras: opts.cameras,
        cameraPrefix: opts.cameraPrefix,
        fps: opts.fps,
        width: opts.resolution.width,
        height: opts.resolution.height,
        jpegQuality: opts.jpegQuality,
        audio: opts.audio,
        audioPrefix: opts.audioPrefix,
        clipSeconds: opts.clipSeconds,
        clipInterval: opts.clipInterval,
        audioRate: opts.audioRate,
        audioChannels: Number(opts.audioChannels) as 1 | 2,
        audioSpeech: opts.audioSpeech,
      },
      controller.signal,
      (s) => {
        if (Date.now() - lastLine < 5000) return;
        lastLine = Date.now();
        const frames =
          s.frames + s.skippedFrames > 0 ? `, ${s.frames} frames, ${s.skippedFrames} skipped` : '';
        const clips = s.clips + s.skippedClips > 0 ? `, ${s.clips} clips, ${s.skippedClips} skipped` : '';
        process.stderr.write(
          `sent ${s.sent} (${s.anomalies} anomalies${frames}${clips}), ${s.ratePerSecond.toFixed(0)} msg/s\n`,
        );
      },
    );
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  });

registerModelCommands(program);
registerQueryCommands(program);
registerDoctorCommand(program, VERSION);

program.parseAsync().catch((error: Error) => {
  process.stderr.write(`outpost: ${error.message}\n`);
  process.exit(1);
});
