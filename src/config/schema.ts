import { z } from 'zod';
import { outboxSchema, uplinkSchema } from './delivery.js';
import { bothOrNeither, brokerUrl, clientId, port, seconds, secret } from './fields.js';

/**
 * The single source of truth for Outpost's configuration: types, defaults, validation, the environment
 * variables (derived from each key's path, see `env.ts`) and the editor JSON Schema (`npm run schema`).
 * Every key is documented here and nowhere else.
 */

const taskOverride = z.strictObject({
  prompt: z
    .string()
    .min(1)
    .optional()
    .describe('Replaces the task prompt; {{input}} is replaced by the job data.'),
  schema: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('Replaces the JSON schema that constrains and validates the output.'),
});

/** A camera's name is a topic level and a folder name under <dataDir>/media. */
export const CAMERA_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Change-gating settings, without defaults (a camera's override sets only what it changes). */
const gateFields = {
  mode: z
    .enum(['change', 'off'])
    .describe(
      'change: a frame reaches the model only when it differs from the last accepted one; off: every ' +
        'frame does (still at most one per minInterval). Default change.',
    ),
  threshold: z
    .number()
    .min(0)
    .max(0.99)
    .describe(
      'Share of the pixels of a 32x32 grey copy that must differ (by more than the noise floor) for a ' +
        'frame to count as changed. Default 0.02.',
    ),
  minInterval: z
    .number()
    .min(0)
    .describe('At most one frame per camera reaches the model per this interval. Unit: seconds. Default 1.'),
  cooldown: z
    .number()
    .min(0)
    .describe(
      'After a changed frame, further changes within this are dropped (a force frame bypasses it). ' +
        'Unit: seconds. Default 10.',
    ),
};

const gateSchema = z.strictObject({
  mode: gateFields.mode.default('change'),
  threshold: gateFields.threshold.default(0.02),
  minInterval: gateFields.minInterval.default(1),
  cooldown: gateFields.cooldown.default(10),
});

const cameraSchema = z.strictObject({
  mode: gateFields.mode.optional(),
  threshold: gateFields.threshold.optional(),
  minInterval: gateFields.minInterval.optional(),
  cooldown: gateFields.cooldown.optional(),
  prompt: z.string().min(1).optional().describe("Replaces the frame task's prompt for this camera."),
});

const routeSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lower-case letters, digits, "-" and "_"')
      .describe('Route name, used in logs, counters and the errors topic.'),
    filter: z
      .string()
      .min(1)
      .refine((f) => !/[#+]/.test(f.replace(/(^|\/)[+#](?=\/|$)/g, '')), 'wildcards must fill a whole level')
      .describe(
        'MQTT topic filter. For sensors the wildcards capture the device, then the metric: `sensors/+/+` ' +
          'takes a value per message, `sensors/+` an object of metrics. For frames and audio the one ' +
          'wildcard captures the camera or source: `cameras/+/frame`, `audio/+/clip`.',
      ),
    kind: z.enum(['sensor', 'frame', 'audio']).describe('Which pipeline stage decodes this route.'),
    maxBytes: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        'Largest accepted payload; a larger one is rejected unread. Unit: bytes. Default 65536 for ' +
          'sensor routes, 8 MiB for frame routes, 16 MiB for audio routes.',
      ),
    tasks: z
      .strictObject({
        explain: taskOverride.optional().describe('The anomaly explanation of this route.'),
        digest: taskOverride.optional().describe('The periodic device digest of this route.'),
        frame: taskOverride.optional().describe('The description of a camera frame of this route.'),
        audio: taskOverride.optional().describe('The transcript of a voiced audio clip of this route.'),
      })
      .optional()
      .describe(
        'Per task (explain: an anomaly, digest: a device period, frame: a camera frame, audio: a voiced ' +
          'clip), a prompt and/or schema of this route.',
      ),
  })
  .describe('A topic route: filter -> kind -> decoder.');

export const configSchema = z
  .strictObject({
    gatewayId: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'letters, digits, ".", "-" and "_" (it is a topic level)')
      .optional()
      .describe('Names this gateway in published topics (`outpost/<gatewayId>/...`). Default: the hostname.'),
    dataDir: z
      .string()
      .min(1)
      .default('./data')
      .describe('Folder for the database and media, relative to the working directory. Default ./data.'),
    log: z
      .strictObject({
        level: z
          .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
          .default('info')
          .describe('Least severe level written. Default info.'),
        format: z
          .enum(['auto', 'json', 'pretty'])
          .default('auto')
          .describe('json: one JSON object a line; pretty: readable; auto: pretty on a TTY. Default auto.'),
      })
      .prefault({}),
    mqtt: z
      .strictObject({
        url: brokerUrl()
          .optional()
          .describe('Broker to connect to. Absent: an embedded broker is started (see `broker`).'),
        clientId: clientId()
          .optional()
          .describe('Fixed client id of the persistent session. Default outpost-<gatewayId>.'),
        username: z.string().optional().describe('Broker user name.'),
        password: z.string().optional().meta(secret).describe('Broker password.'),
        ca: z
          .string()
          .optional()
          .describe('Path of a PEM CA bundle that signs the broker certificate (mqtts).'),
        cert: z.string().optional().describe('Path of a PEM client certificate (mutual TLS).'),
        key: z.string().optional().describe('Path of the PEM private key of `cert`.'),
        rejectUnauthorized: z
          .boolean()
          .default(true)
          .describe('Verify the broker certificate. Turn off only for a lab broker. Default true.'),
        keepalive: seconds('MQTT keepalive interval.', 30),
        reconnectMin: seconds('First reconnect delay; doubles (with jitter) up to reconnectMax.', 1),
        reconnectMax: seconds('Longest reconnect delay.', 30),
        topicPrefix: z
          .string()
          .regex(/^[^#+]+$/, 'no wildcards')
          .default('outpost')
          .describe('First level of every published topic. Default outpost.'),
      })
      .prefault({}),
    broker: z
      .strictObject({
        host: z
          .string()
          .default('127.0.0.1')
          .describe(
            'Address the embedded broker listens on when mqtt.url is absent. Beyond loopback it needs ' +
              'broker.username and broker.password. Default 127.0.0.1.',
          ),
        port: port.default(1883).describe('Port of the embedded broker. Default 1883.'),
        username: z.string().optional().describe('User name the embedded broker requires of every client.'),
        password: z.string().optional().meta(secret).describe('Password the embedded broker requires.'),
      })
      .prefault({}),
    ingest: z
      .strictObject({
        routes: z
          .array(routeSchema)
          .min(1)
          .default([
            { name: 'sensor-metric', filter: 'sensors/+/+', kind: 'sensor', maxBytes: 65536 },
            { name: 'sensor-device', filter: 'sensors/+', kind: 'sensor', maxBytes: 65536 },
            { name: 'camera-frame', filter: 'cameras/+/frame', kind: 'frame', maxBytes: 8 * 1024 * 1024 },
            { name: 'audio-clip', filter: 'audio/+/clip', kind: 'audio', maxBytes: 16 * 1024 * 1024 },
          ])
          .describe('Topic routes. Environment: a JSON array.'),
        duplicateWindow: seconds(
          'A redelivered message (MQTT DUP flag) whose topic and payload were journaled this recently is ' +
            'recognised as a duplicate and acknowledged without a second row.',
          600,
        ),
      })
      .prefault({}),
    sensors: z
      .strictObject({
        window: seconds('Length of the tumbling aggregation window per series.', 60),
        maxFuture: seconds('How far ahead of the gateway clock a reading ts may be.', 86400),
        minTimestamp: z
          .string()
          .default('2000-01-01T00:00:00Z')
          .refine((s) => Number.isFinite(Date.parse(s)), 'an ISO 8601 date')
          .describe('Readings stamped before this are rejected as absurd. Default 2000-01-01T00:00:00Z.'),
        maxSeries: z
          .number()
          .int()
          .positive()
          .default(5000)
          .describe(
            'Distinct device/metric series tracked at most; readings of further new series are rejected ' +
              '(a stranger inventing topics cannot exhaust memory). Default 5000.',
          ),
        anomaly: z
          .strictObject({
            window: z
              .number()
              .int()
              .min(5)
              .max(10000)
              .default(60)
              .describe('Samples in the rolling median/MAD baseline per series. Default 60.'),
            threshold: z
              .number()
              .positive()
              .default(6)
              .describe('Robust z-score (|x - median| / (1.4826 MAD)) that raises an event. Default 6.'),
            warmup: z
              .number()
              .int()
              .min(3)
              .default(20)
              .describe('Samples a series needs before it can raise anything. Default 20.'),
            cooldown: seconds('Further anomalies of one series within this time raise no new event.', 60),
          })
          .prefault({}),
      })
      .prefault({}),
    frames: z
      .strictObject({
        size: z
          .literal([256, 512, 768])
          .default(512)
          .describe(
            "Edge of the square image the model gets (Gemma 3n's vision encoder takes 256, 512 or 768). Default 512.",
          ),
        fit: z
          .enum(['letterbox', 'crop'])
          .default('letterbox')
          .describe(
            'letterbox: the whole frame inside the square with black bars; crop: the centre square only. ' +
              'Default letterbox.',
          ),
        thumbnailSize: z
          .number()
          .int()
          .min(32)
          .max(1024)
          .default(320)
          .describe('Longest side of the stored thumbnail. Unit: pixels. Default 320.'),
        jpegQuality: z
          .number()
          .int()
          .min(30)
          .max(100)
          .default(85)
          .describe('JPEG quality of the model input and the thumbnail. Default 85.'),
        maxPixels: z
          .number()
          .int()
          .positive()
          .default(25_000_000)
          .describe(
            'Largest width x height accepted, read from the image header before any pixel is decoded ' +
              '(decompression bombs). Default 25000000.',
          ),
        maxCameras: z
          .number()
          .int()
          .positive()
          .default(64)
          .describe(
            'Cameras tracked at most; frames of further new cameras are rejected (each keeps a reference ' +
              'image). Default 64.',
          ),
        gate: gateSchema.prefault({}).describe('Change gating of every camera (per camera: frames.cameras).'),
        cameras: z
          .record(
            z.string().regex(CAMERA_NAME, 'a camera name (letters, digits, ".", "-", "_")'),
            cameraSchema,
          )
          .default({})
          .describe(
            'Per camera (the topic level the route captures), gate settings and a prompt that replace the ' +
              'defaults above. Environment: a JSON object.',
          ),
      })
      .prefault({}),
    audio: z
      .strictObject({
        maxSeconds: seconds(
          'Longer clips are rejected, from the header, before their samples are decoded.',
          120,
        ),
        maxChannels: z
          .number()
          .int()
          .min(1)
          .max(32)
          .default(8)
          .describe('Clips with more channels are rejected. Default 8.'),
        maxSources: z
          .number()
          .int()
          .positive()
          .default(64)
          .describe('Audio sources tracked at most; clips of further new sources are rejected. Default 64.'),
        segmentSeconds: z
          .number()
          .min(1)
          .max(30)
          .default(30)
          .describe(
            'Voiced segments are cut to at most this (the model hears 30 s at a time). Unit: seconds. Default 30.',
          ),
        padMs: z
          .number()
          .int()
          .min(0)
          .max(2000)
          .default(300)
          .describe('Audio kept before and after each stretch of speech. Unit: milliseconds. Default 300.'),
        maxWaiting: z
          .number()
          .int()
          .positive()
          .default(50)
          .describe(
            'Audio jobs of one source waiting at most (for a model that hears); past it the oldest is ' +
              'dropped, its clip kept. Default 50.',
          ),
        language: z
          .string()
          .regex(/^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$/, 'a language code such as en, de or pt-BR')
          .optional()
          .describe(
            'Language to translate transcripts into (the audio task then asks for a translation too). ' +
              'Absent: no translation.',
          ),
        microphone: z
          .strictObject({
            enabled: z
              .boolean()
              .default(false)
              .describe("Capture the board's own microphone as an audio source. Default false."),
            source: z
              .string()
              .regex(CAMERA_NAME, 'a plain name')
              .default('mic')
              .describe('Source name of the microphone (audio/<source>/clip). Default mic.'),
            device: z
              .string()
              .min(1)
              .optional()
              .describe('ALSA capture device, e.g. plughw:1,0. Default: the system default.'),
            recorder: z
              .string()
              .min(1)
              .default('arecord')
              .describe('arecord, sox, or the path of a recorder module. Default arecord.'),
            gain: z
              .number()
              .min(-30)
              .max(40)
              .default(0)
              .describe('Gain applied to the captured signal. Unit: dB. Default 0.'),
            segmentSeconds: z
              .number()
              .min(1)
              .max(120)
              .default(30)
              .describe(
                'Continuous capture is cut into clips of at most this, at a quiet moment. Unit: seconds. Default 30.',
              ),
          })
          .prefault({}),
      })
      .prefault({}),
    store: z
      .strictObject({
        synchronous: z
          .enum(['normal', 'full'])
          .default('normal')
          .describe(
            'SQLite synchronous mode under WAL. normal: a commit survives a crash or kill of the process, and ' +
              'costs microseconds; the last commits before a power cut can be lost. full: an fsync per commit ' +
              'survives power cuts too, at a large cost in messages/s on SD cards. Default normal.',
          ),
        batchSize: z
          .number()
          .int()
          .min(1)
          .max(10000)
          .default(500)
          .describe('Journal entries the pipeline commits in one transaction. Default 500.'),
        journalKeep: seconds('Processed journal entries are kept this long (duplicate recognition).', 900),
        readingsDays: z
          .number()
          .positive()
          .default(30)
          .describe('Readings older than this are pruned. Default 30.'),
        eventsDays: z
          .number()
          .positive()
          .default(365)
          .describe('Events, windows, rejects and model results kept. Unit: days. Default 365.'),
        mediaDays: z
          .number()
          .positive()
          .default(30)
          .describe('Thumbnails and clips older than this are deleted. Unit: days. Default 30.'),
        mediaMaxBytes: z
          .number()
          .int()
          .positive()
          .default(1024 * 1024 * 1024)
          .describe(
            'Thumbnails, clips and model inputs under <dataDir>/media take at most this; past it the oldest ' +
              'are deleted. Unit: bytes. Default 1 GiB.',
          ),
        maxDatabaseBytes: z
          .number()
          .int()
          .positive()
          .default(2 * 1024 * 1024 * 1024)
          .describe(
            'The database uses at most this (pages in use); past it, the table that takes the most room ' +
              'gives back its oldest rows (readings and rejects long before findings; never what is still to ' +
              'be processed or sent). Unit: bytes. Default 2 GiB.',
          ),
        minFreeBytes: z
          .number()
          .int()
          .min(0)
          .default(256 * 1024 * 1024)
          .describe(
            'Free space kept on the data volume. Below it an emergency prune deletes the oldest media, then ' +
              'the oldest rows, and returns the pages to the file system; status and health report it. ' +
              '0: no check. Unit: bytes. Default 256 MiB.',
          ),
        diskCheckInterval: seconds('How often free space and the database size are checked.', 30),
      })
      .prefault({}),
    outbox: outboxSchema,
    uplink: uplinkSchema,
    http: z
      .strictObject({
        host: z
          .string()
          .optional()
          .describe(
            'Address the HTTP server binds. Default 0.0.0.0 when http.token is set, else 127.0.0.1; a ' +
              'non-loopback address without a token is refused.',
          ),
        port: port.default(8080).describe('HTTP port (0: any free port). Default 8080.'),
        token: z
          .string()
          .min(16, 'at least 16 characters')
          .optional()
          .meta(secret)
          .describe(
            "Bearer token required by every route but /healthz and the web page's own files (which hold no " +
              'data; the page asks for the token).',
          ),
        tls: z
          .strictObject({
            cert: z
              .string({ error: bothOrNeither('http.tls.key') })
              .min(1)
              .describe('Path of the PEM certificate (with its chain) the server presents.'),
            key: z
              .string({ error: bothOrNeither('http.tls.cert') })
              .min(1)
              .describe('Path of the PEM private key of http.tls.cert.'),
          })
          .optional()
          .describe(
            'Serve HTTPS with this certificate and key (both or neither; paths relative to the working ' +
              'directory). Absent: plain HTTP.',
          ),
        rateLimit: z
          .number()
          .int()
          .min(0)
          .max(1_000_000)
          .default(600)
          .describe(
            'Requests per minute per client address, sustained, with a burst of as many; past it: 429 with ' +
              'Retry-After. /healthz is exempt. 0: no limit. Default 600.',
          ),
        cors: z
          .array(
            z
              .string()
              .regex(/^https?:\/\/[^/\s?#]+$/, 'an origin such as https://dashboard.local:8443 (no path)'),
          )
          .optional()
          .describe(
            'Browser origins (scheme://host[:port]) allowed to call the API from their pages (CORS). Absent: ' +
              'no CORS headers are sent.',
          ),
      })
      .prefault({}),
    homeassistant: z
      .strictObject({
        enabled: z
          .boolean()
          .default(true)
          .describe(
            'Announce the gateway, its cameras, sensor series and audio sources to Home Assistant (MQTT ' +
              'discovery, retained configs). Default true.',
          ),
        prefix: z
          .string()
          .regex(/^[^#+]+$/, 'no wildcards')
          .default('homeassistant')
          .describe("Home Assistant's discovery prefix. Default homeassistant."),
      })
      .prefault({}),
    health: z
      .strictObject({
        interval: seconds('Period of the retained health message.', 30),
      })
      .prefault({}),
    model: z
      .strictObject({
        name: z
          .string()
          .min(1)
          .optional()
          .meta({ env: 'OUTPOST_MODEL' })
          .describe(
            'The model: a GGUF path, or a catalog name (`outpost model list`). Absent: the largest catalog ' +
              'model already in model.dir. Environment: OUTPOST_MODEL.',
          ),
        runtime: z
          .enum(['auto', 'node-llama-cpp', 'llama.node'])
          .default('auto')
          .describe(
            'Which llama.cpp runtime holds the model. auto: llama.node (libmtmd: images, audio) when ' +
              'model.mmproj is present, else node-llama-cpp (text). Default auto.',
          ),
        mmproj: z
          .string()
          .min(1)
          .optional()
          .meta({ env: 'OUTPOST_MMPROJ' })
          .describe('A vision/audio projector GGUF for the model. Environment: OUTPOST_MMPROJ.'),
        variants: z
          .array(z.string().min(1))
          .optional()
          .describe(
            'Further GGUF paths or catalog names the memory governor may switch to as free RAM changes ' +
              '(e.g. E4B and E2B); the largest that fits is loaded. Environment: a JSON array.',
          ),
        dir: z.string().min(1).optional().describe('Folder of downloaded models. Default <dataDir>/models.'),
        autoPull: z
          .boolean()
          .default(false)
          .describe('Download a catalog model that is not in model.dir yet at start. Default false.'),
        contextSizes: z
          .array(z.number().int().min(128).max(131072))
          .min(1)
          .default([4096, 2048, 1024])
          .describe(
            'Context sizes the governor may use, largest first; it shrinks the context before the model.',
          ),
        threads: z
          .number()
          .int()
          .min(1)
          .optional()
          .describe(
            "llama.cpp threads. Default: the physical cores but one, which stays with ingest (llama.cpp's own default oversubscribes small boards).",
          ),
        gpu: z
          .enum(['auto', 'off'])
          .default('auto')
          .describe(
            'auto uses a CUDA/Vulkan/Metal build when one works (Jetson), else the CPU. Default auto.',
          ),
        maxTokens: z
          .number()
          .int()
          .min(16)
          .max(8192)
          .default(256)
          .describe('Tokens a job may generate. Default 256.'),
        memoryCap: z
          .number()
          .int()
          .positive()
          .optional()
          .describe('Most bytes the resident model may take, whatever is free. Default: no cap of its own.'),
        reserve: z
          .number()
          .int()
          .min(0)
          .default(256 * 1024 * 1024)
          .describe('Bytes of MemAvailable left to everything else. Default 256 MiB.'),
        upHold: seconds(
          'A larger model or context is loaded only after the budget allowed it this long.',
          300,
        ),
      })
      .prefault({}),
    inference: z
      .strictObject({
        enabled: z
          .boolean()
          .default(true)
          .describe('Run model jobs (anomaly explanations, digests). Default true.'),
        jobTimeout: seconds(
          'A generation that takes longer is aborted and the job retried; a worker that does not answer ' +
            'the abort within 2 s is killed and restarted. inference.taskTimeouts sets it per task.',
          180,
        ),
        taskTimeouts: z
          .strictObject({
            explain: z
              .number()
              .positive()
              .optional()
              .describe(
                'Time limit of explaining a sensor anomaly (results/anomaly): a short text prompt and a few ' +
                  'sentences out. Unit: seconds. Default: inference.jobTimeout.',
              ),
            digest: z
              .number()
              .positive()
              .optional()
              .describe(
                "Time limit of a device's periodic digest (results/digest): text in and out, a little longer " +
                  'than an explanation. Unit: seconds. Default: inference.jobTimeout.',
              ),
            frame: z
              .number()
              .positive()
              .optional()
              .describe(
                'Time limit of describing a camera frame (results/frame): the vision encoder and 256 image ' +
                  'tokens come before the answer, often tens of seconds on a Raspberry Pi; give it the most ' +
                  'with audio. Unit: seconds. Default: inference.jobTimeout.',
              ),
            audio: z
              .number()
              .positive()
              .optional()
              .describe(
                'Time limit of transcribing an audio clip (results/audio): up to 30 s of audio at 6.25 ' +
                  'tokens/s before the answer, and a transcript is the longest output. Unit: seconds. ' +
                  'Default: inference.jobTimeout.',
              ),
            ask: z
              .number()
              .positive()
              .optional()
              .describe(
                'Time limit of answering a question (POST /api/ask, MQTT ask) from stored findings; keep it ' +
                  'below inference.askTimeout, which also counts the wait in the queue. Unit: seconds. ' +
                  'Default: inference.jobTimeout.',
              ),
          })
          .prefault({})
          .describe(
            'Per-task time limits of one generation, each overriding inference.jobTimeout for its task: a ' +
              'frame or a clip takes far longer than a sentence about a sensor, and a short limit on the text ' +
              'tasks notices a stuck generation sooner. Environment: OUTPOST_INFERENCE_TASK_TIMEOUTS_<TASK>.',
          ),
        maxAttempts: z
          .number()
          .int()
          .min(1)
          .default(3)
          .describe(
            'A job that fails (or kills the worker) this many times is failed with its reason. Default 3.',
          ),
        modelRetry: seconds(
          'While no model is resident, how often to look again (new file, more memory).',
          10,
        ),
        digestInterval: z
          .number()
          .min(0)
          .default(3600)
          .describe('Period of the per-device digest job; 0 turns digests off. Unit: seconds. Default 3600.'),
        askPriority: z
          .number()
          .int()
          .min(-100)
          .max(100)
          .default(0)
          .describe(
            'Priority of a question asked of the gateway (POST /api/ask, the MQTT ask request) against the ' +
              'pipeline jobs, which have 0: higher runs first, equal waits its turn. Default 0.',
          ),
        askTimeout: seconds('How long a question waits for its answer, queue included.', 120),
      })
      .prefault({}),
  })
  .describe('Outpost configuration (outpost.yaml). Every key can be set as OUTPOST_<SECTION>_<KEY>.');

/** The configuration as written (defaults not yet applied). */
export type ConfigInput = z.input<typeof configSchema>;
/** A route after validation. */
export type RouteConfig = z.output<typeof routeSchema>;

/** Default payload limit of each route kind, bytes. */
const DEFAULT_MAX_BYTES: Readonly<Record<RouteConfig['kind'], number>> = {
  sensor: 64 * 1024,
  frame: 8 * 1024 * 1024,
  audio: 16 * 1024 * 1024,
};

/** A route's payload limit: its own, else its kind's default. */
export const routeMaxBytes = (route: RouteConfig): number => route.maxBytes ?? DEFAULT_MAX_BYTES[route.kind];

type Parsed = z.output<typeof configSchema>;

/** The validated, resolved and frozen configuration every stage receives. */
export type Config = Readonly<
  Omit<Parsed, 'gatewayId' | 'mqtt' | 'http'> & {
    gatewayId: string;
    mqtt: Parsed['mqtt'] & { clientId: string };
    http: Parsed['http'] & { host: string };
  }
>;
