import { z } from 'zod';
import { brokerUrl, clientId, seconds, secret } from './fields.js';

/**
 * How published messages wait for a broker: the outbox's limits and its policy per topic class, and the
 * optional uplink to a fleet's upstream broker with an outbox of its own.
 */

const MiB = 1024 * 1024;

const policy = (fallback: 'keep' | 'overwrite-oldest', what: string) =>
  z
    .enum(['keep', 'overwrite-oldest'])
    .default(fallback)
    .describe(
      `${what}: keep holds them until the hard cap; overwrite-oldest drops the oldest once the outbox passes ` +
        `its budget (maxMessages, maxBytes) or they pass maxAge. Default ${fallback}.`,
    );

/** Limits of one outbox (the local one, or the uplink's). */
const limitFields = (inflightFallback: number) => ({
  maxMessages: z
    .number()
    .int()
    .positive()
    .default(100_000)
    .describe(
      'Budget: past this many waiting messages, the oldest of the overwrite-oldest classes are dropped ' +
        '(counted). Default 100000.',
    ),
  maxBytes: z
    .number()
    .int()
    .positive()
    .default(64 * MiB)
    .describe(
      'Budget in payload bytes: past it, the oldest of the overwrite-oldest classes are dropped. Default 64 MiB.',
    ),
  hardMaxMessages: z
    .number()
    .int()
    .positive()
    .default(500_000)
    .describe('Hard cap: past this many, the oldest messages of any class are dropped. Default 500000.'),
  hardMaxBytes: z
    .number()
    .int()
    .positive()
    .default(256 * MiB)
    .describe('Hard cap in payload bytes: past it, the oldest of any class are dropped. Default 256 MiB.'),
  maxAge: seconds(
    'Messages of the overwrite-oldest classes older than this are dropped unsent (counted); keep classes ' +
      'have no age limit.',
    7 * 86400,
  ),
  inflight: z
    .number()
    .int()
    .min(1)
    .max(1000)
    .default(inflightFallback)
    .describe(`Publishes awaiting their acknowledgement at once. Default ${inflightFallback}.`),
});

export const outboxSchema = z
  .strictObject({
    ...limitFields(20),
    policy: z
      .strictObject({
        results: policy('keep', 'Model results (results/<kind>/<source>)'),
        events: policy('keep', 'Anomalies and alerts (events/<source>)'),
        windows: policy('overwrite-oldest', 'Window summaries (windows/<device>/<metric>)'),
        errors: policy('overwrite-oldest', 'Rejected-input reports (errors)'),
      })
      .prefault({})
      .describe('What each topic class does when the outbox is full; the uplink follows the same policy.'),
  })
  .prefault({})
  .describe(
    'Results, events, windows and errors wait here (in SQLite) while the broker is away and drain in order ' +
      'when it returns.',
  );

export const uplinkSchema = z
  .strictObject({
    url: brokerUrl()
      .optional()
      .describe(
        "A fleet's upstream broker or cluster (EMQX, HiveMQ, a cloud IoT broker) that results and events are " +
          'forwarded to, store-and-forward. Absent: no uplink.',
      ),
    clientId: clientId()
      .optional()
      .describe('Client id upstream (a persistent session). Default outpost-uplink-<gatewayId>.'),
    username: z.string().optional().describe('User name upstream.'),
    password: z.string().optional().meta(secret).describe('Password upstream.'),
    ca: z
      .string()
      .optional()
      .describe('Path of a PEM CA bundle that signs the upstream certificate (mqtts).'),
    cert: z.string().optional().describe('Path of a PEM client certificate (mutual TLS, e.g. AWS IoT).'),
    key: z.string().optional().describe('Path of the PEM private key of `cert`.'),
    rejectUnauthorized: z
      .boolean()
      .default(true)
      .describe('Verify the upstream certificate. Turn off only for a lab broker. Default true.'),
    protocolVersion: z
      .union([z.literal(4), z.literal(5)])
      .default(5)
      .describe('MQTT version upstream: 5, or 4 (3.1.1) for brokers that refuse 5. Default 5.'),
    keepalive: seconds('MQTT keepalive upstream.', 60),
    reconnectMin: seconds('First reconnect delay upstream; doubles (with jitter) up to reconnectMax.', 2),
    reconnectMax: seconds('Longest reconnect delay upstream.', 120),
    topicPrefix: z
      .string()
      .regex(/^[^#+]+$/, 'no wildcards')
      .default('outpost')
      .describe(
        'First level of the forwarded topics: <topicPrefix>/<gatewayId>/results/..., .../events/... and the ' +
          "uplink's own retained status. Default outpost.",
      ),
    forward: z
      .array(z.enum(['results', 'events', 'windows', 'errors']))
      .default(['results', 'events'])
      .describe('Topic classes forwarded upstream. Environment: a JSON array. Default ["results","events"].'),
    outbox: z
      .strictObject(limitFields(10))
      .prefault({})
      .describe("The uplink's own outbox: what waits while the upstream broker is unreachable."),
  })
  .prefault({});
