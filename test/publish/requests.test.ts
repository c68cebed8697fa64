import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.js';
import { type EmbeddedBroker, startEmbeddedBroker } from '../../src/ingest/index.js';
import { type QueryOutcome, RequestHandler, type RequestHandlerOptions } from '../../src/publish/requests.js';
import { wireTopics } from '../../src/publish/topics.js';
import { type Mosquitto, startMosquitto } from '../helpers/mosquitto.js';
import { waitFor } from '../helpers/wait.js';

const logger = createLogger({ level: 'silent', format: 'json' });
const topics = wireTopics('outpost', 'gw-req');
const BASE = 'outpost/gw-req';
const STATUS = { gatewayId: 'gw-req', state: 'running' };

interface Received {
  topic: string;
  body: Record<string, unknown>;
  /** hex */
  correlationData?: string;
  contentType?: string;
}

/** A requester: a real mqtt.js client that records every response it receives. */
interface Requester {
  client: MqttClient;
  received: Received[];
  send(op: string, body: unknown, opts?: IClientPublishOptions): Promise<void>;
  /** The response that echoes `transaction`. */
  answer(transaction: string | number): Promise<Received>;
}

async function requester(url: string, protocolVersion: 4 | 5, filter: string): Promise<Requester> {
  const client = await mqtt.connectAsync(url, { protocolVersion, clean: true });
  const received: Received[] = [];
  client.on('message', (topic, payload, packet) => {
    const correlation = packet.properties?.correlationData;
    received.push({
      topic,
      body: JSON.parse(payload.toString()) as Record<string, unknown>,
      ...(correlation ? { correlationData: correlation.toString('hex') } : {}),
      ...(packet.properties?.contentType ? { contentType: packet.properties.contentType } : {}),
    });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return {
    client,
    received,
    async send(op, body, opts = {}) {
      const payload = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
      await client.publishAsync(`${BASE}/request/${op}`, payload, { qos: 1, ...opts });
    },
    answer: (transaction) =>
      waitFor(`the response to ${transaction}`, () =>
        received.find((r) => r.body.transaction === transaction && 'status' in r.body),
      ),
  };
}

/** A query validator standing in for the HTTP results validator: it knows `kind` and `limit`. */
function queryResults(params: Record<string, unknown>): QueryOutcome {
  for (const key of Object.keys(params)) {
    if (!['kind', 'limit'].includes(key)) return { ok: false, error: `unknown filter ${key}` };
  }
  if (params.limit !== undefined && !(Number.isInteger(params.limit) && (params.limit as number) > 0)) {
    return { ok: false, error: 'limit: must be a positive integer' };
  }
  return { ok: true, value: { results: [{ id: 'r1', kind: params.kind ?? 'frame' }], next: null } };
}

describe('RequestHandler on the embedded broker (aedes, MQTT 3.1.1)', () => {
  let broker: EmbeddedBroker;
  let gateway: MqttClient;
  let handler: RequestHandler;
  let asker: Requester;
  let askCalls: { question: string; since?: unknown; until?: unknown }[];
  /** Asks wait here until released (to hold requests in flight). */
  let gate: { open: Promise<void>; release: () => void };
  let askFails = false;

  function newGate() {
    let release = () => {};
    const open = new Promise<void>((resolve) => {
      release = resolve;
    });
    gate = { open, release };
  }

  function makeHandler(overrides: Partial<RequestHandlerOptions> = {}): RequestHandler {
    return new RequestHandler({
      topics,
      publish: (topic, payload, opts) => gateway.publishAsync(topic, payload, opts).then(() => {}),
      status: () => STATUS,
      queryResults,
      ask: async (request) => {
        askCalls.push(request);
        await gate.open;
        if (askFails) throw new Error('the model crashed');
        return { answer: `about ${request.question}`, results: ['r1'] };
      },
      logger,
      ...overrides,
    });
  }

  beforeAll(async () => {
    broker = await startEmbeddedBroker({
      host: '127.0.0.1',
      port: 0,
      logger,
      // As the daemon wires it: requests go to the handler (answered in the background), the rest to ingest.
      onPublish: (packet, ack) => {
        if (handler?.accepts(packet.topic)) void handler.handle(packet.topic, packet.payload);
        ack();
      },
    });
    gateway = await mqtt.connectAsync(broker.url, { protocolVersion: 4, clean: true });
    asker = await requester(broker.url, 4, `${BASE}/response/+`);
  });

  afterAll(async () => {
    await asker.client.endAsync();
    await gateway.endAsync();
    await broker.close();
  });

  afterEach(async () => {
    gate.release();
    await handler.dispose();
    asker.received.length = 0;
  });

  function setUp(overrides: Partial<RequestHandlerOptions> = {}) {
    askCalls = [];
    askFails = false;
    newGate();
    gate.release();
    handler = makeHandler(overrides);
  }

  it('subscribes under the gateway base and ignores other topics', async () => {
    setUp();
    expect(handler.filter).toBe(`${BASE}/request/+`);
    expect(handler.accepts(`${BASE}/request/status`)).toBe(true);
    expect(handler.accepts(`${BASE}/response/status`)).toBe(false);
    expect(handler.accepts('sensors/pump1/temperature')).toBe(false);
    await handler.handle('sensors/pump1/temperature', '1');
    expect(handler.stats()).toMatchObject({ ok: 0, errors: {} });
  });

  it('answers status, query and ask on response/<op> with the transaction echoed', async () => {
    setUp();
    await asker.send('status', { transaction: 'tx-status' });
    await asker.send('query', { transaction: 7, kind: 'anomaly', limit: 5 });
    await asker.send('ask', {
      transaction: 'tx-ask',
      question: ' what happened at pump1? ',
      since: '2024-05-01',
    });

    const status = await asker.answer('tx-status');
    expect(status.topic).toBe(`${BASE}/response/status`);
    expect(status.body).toEqual({ status: 'ok', transaction: 'tx-status', result: STATUS });

    const query = await asker.answer(7);
    expect(query.topic).toBe(`${BASE}/response/query`);
    expect(query.body).toEqual({
      status: 'ok',
      transaction: 7,
      result: { results: [{ id: 'r1', kind: 'anomaly' }], next: null },
    });

    const ask = await asker.answer('tx-ask');
    expect(ask.topic).toBe(`${BASE}/response/ask`);
    expect(ask.body).toEqual({
      status: 'ok',
      transaction: 'tx-ask',
      result: { answer: 'about what happened at pump1?', results: ['r1'] },
    });
    expect(askCalls).toEqual([{ question: 'what happened at pump1?', since: '2024-05-01' }]);
    expect(handler.stats()).toMatchObject({ ok: 3, errors: {}, inflight: 0 });
  });

  it('answers an empty payload (mosquitto_pub -n) without a transaction', async () => {
    setUp();
    await asker.send('status', '');
    const response = await waitFor('the status response', () => asker.received[0]);
    expect(response.body).toEqual({ status: 'ok', result: STATUS });
  });

  it('answers errors: unknown op, bad JSON, a non-object, a bad transaction, an oversized payload', async () => {
    setUp({ maxPayloadBytes: 1024 });
    await asker.send('reboot', { transaction: 'tx-reboot' });
    expect((await asker.answer('tx-reboot')).body).toEqual({
      status: 'error',
      transaction: 'tx-reboot',
      code: 'unknown-op',
      error: 'unknown op "reboot"; ops: status, query, ask',
    });
    expect((await asker.answer('tx-reboot')).topic).toBe(`${BASE}/response/reboot`);

    await asker.send('status', '{"transaction": "tx-broken", ');
    await asker.send('query', '[1, 2]');
    await asker.send('query', { transaction: { nested: true } });
    await asker.send('query', { transaction: 'tx-big', q: 'x'.repeat(2000) });
    await waitFor('four more responses', () => asker.received.length === 5);
    const bodies = asker.received.slice(1).map((r) => [r.topic, r.body] as const);
    expect(bodies).toEqual([
      [`${BASE}/response/status`, expect.objectContaining({ status: 'error', code: 'bad-json' })],
      [
        `${BASE}/response/query`,
        { status: 'error', code: 'bad-json', error: 'payload must be a JSON object' },
      ],
      [`${BASE}/response/query`, expect.objectContaining({ status: 'error', code: 'invalid' })],
      [
        `${BASE}/response/query`,
        {
          status: 'error',
          code: 'too-large',
          error: expect.stringMatching(/^payload of 20\d\d bytes exceeds 1024/),
        },
      ],
    ]);
    // A payload too large is never parsed, so its transaction cannot be echoed.
    expect(bodies.every(([, body]) => !('transaction' in body))).toBe(true);
    expect(handler.stats().errors).toEqual({ 'unknown-op': 1, 'bad-json': 2, invalid: 1, 'too-large': 1 });
  });

  it('refuses the default 64 KiB limit plus one byte', async () => {
    setUp();
    await asker.send('status', Buffer.alloc(64 * 1024 + 1, 0x20));
    const response = await waitFor('the response', () => asker.received[0]);
    expect(response.body).toMatchObject({ status: 'error', code: 'too-large' });
  });

  it('answers the validator’s reason for invalid filter values, with the transaction', async () => {
    setUp();
    await asker.send('query', { transaction: 'tx-limit', limit: -3 });
    await asker.send('query', { transaction: 'tx-typo', sinec: '2024-01-01' });
    expect((await asker.answer('tx-limit')).body).toEqual({
      status: 'error',
      transaction: 'tx-limit',
      code: 'invalid',
      error: 'limit: must be a positive integer',
    });
    expect((await asker.answer('tx-typo')).body).toMatchObject({
      code: 'invalid',
      error: 'unknown filter sinec',
    });
  });

  it('answers ask errors: missing question, no model, a failing model, a model too slow', async () => {
    setUp();
    await asker.send('ask', { transaction: 'tx-empty', question: '  ' });
    expect((await asker.answer('tx-empty')).body).toMatchObject({
      code: 'invalid',
      error: 'question: expected a non-empty string',
    });
    await asker.send('ask', { transaction: 'tx-extra', question: 'why?', limit: 3 });
    expect((await asker.answer('tx-extra')).body).toMatchObject({ code: 'invalid' });
    askFails = true;
    await asker.send('ask', { transaction: 'tx-crash', question: 'why?' });
    expect((await asker.answer('tx-crash')).body).toEqual({
      status: 'error',
      transaction: 'tx-crash',
      code: 'failed',
      error: 'ask failed: the model crashed',
    });
    await handler.dispose();

    setUp({ ask: undefined });
    await asker.send('ask', { transaction: 'tx-none', question: 'why?' });
    expect((await asker.answer('tx-none')).body).toMatchObject({ status: 'error', code: 'unavailable' });
    await handler.dispose();

    // An error with an HTTP status (the daemon's AskError) keeps its meaning.
    setUp({
      ask: async () => {
        throw Object.assign(new Error('no model is resident'), { statusCode: 503 });
      },
    });
    await asker.send('ask', { transaction: 'tx-503', question: 'why?' });
    expect((await asker.answer('tx-503')).body).toEqual({
      status: 'error',
      transaction: 'tx-503',
      code: 'unavailable',
      error: 'ask failed: no model is resident',
    });
    await handler.dispose();

    setUp({ askTimeoutMs: 100, ask: () => new Promise(() => {}) });
    await asker.send('ask', { transaction: 'tx-slow', question: 'why?' });
    expect((await asker.answer('tx-slow')).body).toMatchObject({
      status: 'error',
      code: 'timeout',
      error: 'no answer within 0.1 s',
    });
  });

  it('refuses requests beyond the in-flight limit at once, then answers again', async () => {
    setUp({ maxInflight: 4 });
    newGate(); // asks now wait until released
    for (let i = 0; i < 10; i++) await asker.send('ask', { transaction: i, question: `q${i}` });
    // The 4 asks in flight hold their slots; the other 6 are refused without waiting for them.
    await waitFor('six busy answers', () => asker.received.length === 6);
    expect(asker.received.map((r) => r.body.transaction)).toEqual([4, 5, 6, 7, 8, 9]);
    for (const r of asker.received) {
      expect(r.body).toMatchObject({ status: 'error', code: 'busy' });
    }
    expect(askCalls).toHaveLength(4);
    expect(handler.stats()).toMatchObject({ inflight: 4, errors: { busy: 6 } });

    gate.release();
    await waitFor('the four answers', () => asker.received.length === 10);
    expect(
      asker.received
        .slice(6)
        .map((r) => r.body.transaction)
        .sort(),
    ).toEqual([0, 1, 2, 3]);
    await asker.send('status', { transaction: 'after' });
    expect((await asker.answer('after')).body.status).toBe('ok');
  });

  it('stops the asks under way on dispose, answering them, and ignores later requests', async () => {
    setUp();
    newGate();
    let aborted = false;
    handler = makeHandler({
      ask: (_request, signal) =>
        new Promise((_, reject) =>
          signal.addEventListener('abort', () => {
            aborted = true;
            reject(new Error('aborted'));
          }),
        ),
    });
    await asker.send('ask', { transaction: 'tx-stop', question: 'why?' });
    await waitFor('the ask in flight', () => handler.stats().inflight === 1);
    await handler.dispose();
    expect(aborted).toBe(true);
    expect((await asker.answer('tx-stop')).body).toMatchObject({
      code: 'unavailable',
      error: 'the gateway is stopping',
    });
    await handler.dispose();
    await handler.handle(`${BASE}/request/status`, '{}');
    expect(handler.stats().ok).toBe(0);
  });
});

describe('RequestHandler on mosquitto (MQTT v5)', () => {
  let broker: Mosquitto;
  let gateway: MqttClient;
  let handler: RequestHandler;
  let caller: Requester;

  beforeAll(async () => {
    broker = await startMosquitto();
    gateway = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true });
    handler = new RequestHandler({
      topics,
      publish: (topic, payload, opts) => gateway.publishAsync(topic, payload, opts).then(() => {}),
      status: () => STATUS,
      queryResults,
      logger,
    });
    // As the daemon feeds it from its external connection.
    gateway.on('message', (topic, payload, packet) => void handler.handle(topic, payload, packet.properties));
    await gateway.subscribeAsync(handler.filter, { qos: 1 });
    caller = await requester(broker.url, 5, '#');
  });

  afterAll(async () => {
    await handler?.dispose();
    await caller?.client.endAsync();
    await gateway?.endAsync();
    await broker?.stop();
  });

  afterEach(() => {
    caller.received.length = 0;
  });

  it('answers on the request’s response topic with its correlation data', async () => {
    await caller.send(
      'status',
      { transaction: 'tx-v5' },
      { properties: { responseTopic: 'clients/ops-1/inbox', correlationData: Buffer.from('corr-42') } },
    );
    const response = await caller.answer('tx-v5');
    expect(response).toEqual({
      topic: 'clients/ops-1/inbox',
      body: { status: 'ok', transaction: 'tx-v5', result: STATUS },
      correlationData: Buffer.from('corr-42').toString('hex'),
      contentType: 'application/json',
    });
    // Nothing went to the default response topic.
    expect(caller.received.filter((r) => r.topic.startsWith(`${BASE}/response/`))).toEqual([]);
    expect(caller.received.map((r) => r.topic)).toEqual([`${BASE}/request/status`, 'clients/ops-1/inbox']);
  });

  it('echoes correlation data on errors too, and answers on response/<op> without a response topic', async () => {
    await caller.send(
      'query',
      { transaction: 'tx-bad', limit: 0 },
      { properties: { responseTopic: 'clients/ops-1/inbox', correlationData: Buffer.from([0xff, 0x01]) } },
    );
    const bad = await caller.answer('tx-bad');
    expect(bad.topic).toBe('clients/ops-1/inbox');
    expect(bad.body).toMatchObject({ status: 'error', code: 'invalid' });
    expect(bad.correlationData).toBe('ff01');

    await caller.send(
      'query',
      { transaction: 'tx-plain', kind: 'frame' },
      { properties: { correlationData: Buffer.from('c') } },
    );
    const plain = await caller.answer('tx-plain');
    expect(plain.topic).toBe(`${BASE}/response/query`);
    expect(plain.correlationData).toBe(Buffer.from('c').toString('hex'));
    expect(plain.body).toMatchObject({ status: 'ok', result: { results: [{ id: 'r1', kind: 'frame' }] } });
  });

  it('refuses a response topic that would feed back into the gateway, answering on the default topic', async () => {
    await caller.send(
      'status',
      { transaction: 'tx-loop' },
      { properties: { responseTopic: `${BASE}/request/status` } },
    );
    const refused = await caller.answer('tx-loop');
    expect(refused.topic).toBe(`${BASE}/response/status`);
    expect(refused.body).toMatchObject({ status: 'error', code: 'bad-response-topic' });
    // Still exactly one answer: no request loop.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(caller.received.map((r) => r.topic)).toEqual([
      `${BASE}/request/status`,
      `${BASE}/response/status`,
    ]);
  });
});
