/**
 * MQTT request/response: `<prefix>/<gw>/request/<op>` is answered on `<prefix>/<gw>/response/<op>`, or on the
 * request's MQTT v5 response topic with its correlation data echoed. The daemon feeds `handle()` from both the
 * embedded broker's publish hook and its external connection, and publishes through `publish`.
 */
import { type Clock, type Logger, systemClock, type Timer, TopicFilter } from '../common/index.js';
import type { WireTopics } from './topics.js';

/** What `publish` is asked to send with a response. */
export interface ResponsePublishOptions {
  qos: 0 | 1 | 2;
  retain: boolean;
  /** MQTT v5 properties; a 3.1.1 connection leaves them out. */
  properties?: { correlationData?: Buffer; contentType?: string };
}

/** MQTT v5 properties of a request that matter here (mqtt.js `IPublishPacket['properties']` fits). */
export interface RequestProperties {
  responseTopic?: string | undefined;
  correlationData?: Buffer | undefined;
}

/** The outcome of a validated query, as the HTTP results route's validator returns it. */
export type QueryOutcome = { ok: true; value: unknown } | { ok: false; error: string };

/** A question for the local model about stored findings. */
export interface AskRequest {
  question: string;
  /** ISO 8601 or epoch ms, as the request gave it */
  since?: string | number;
  until?: string | number;
  /** only findings of these kinds (frame, audio, anomaly, digest) */
  kinds?: string[];
}

export interface RequestHandlerOptions {
  /** The gateway's wire topics: requests and responses live under `topics.base`. */
  topics: WireTopics;
  /** Sends a response; resolves on the broker's acknowledgement. */
  publish: (topic: string, payload: string, opts: ResponsePublishOptions) => Promise<void>;
  /** The gateway's state, answered to `status`. */
  status: () => Record<string, unknown>;
  /**
   * Validates and runs a results query (the filters of HTTP `/api/results`: kind, source, since, until, label,
   * q, limit, cursor) from the request's fields without `transaction`, values as the JSON gave them.
   */
  queryResults: (params: Record<string, unknown>) => QueryOutcome | Promise<QueryOutcome>;
  /** Answers a question from stored findings; absent: `ask` is answered with an error. */
  ask?: ((request: AskRequest, signal: AbortSignal) => Promise<unknown>) | undefined;
  /** Requests being answered at once; more are refused at once with `busy`. Default 4. */
  maxInflight?: number;
  /** Largest request payload, bytes. Default 64 KiB. */
  maxPayloadBytes?: number;
  /** How long an `ask` may take before it is answered with `timeout`, ms. Default 120 000. */
  askTimeoutMs?: number;
  logger: Logger;
  clock?: Clock;
}

/** Stable codes of error responses. */
export type RequestErrorCode =
  | 'bad-json'
  | 'too-large'
  | 'unknown-op'
  | 'invalid'
  | 'unavailable'
  | 'failed'
  | 'timeout'
  | 'busy'
  | 'bad-response-topic';

/** The response payload. `transaction` is present when the request carried a valid one. */
export type RequestResponse =
  | { status: 'ok'; transaction?: string | number; result: unknown }
  | { status: 'error'; transaction?: string | number; code: RequestErrorCode; error: string };

export interface RequestStats {
  /** answered with status ok */
  ok: number;
  /** answered with an error, by code */
  errors: Partial<Record<RequestErrorCode, number>>;
  /** responses that could not be published */
  unpublished: number;
  inflight: number;
}

export const REQUEST_OPS = ['status', 'query', 'ask'] as const;
export type RequestOp = (typeof REQUEST_OPS)[number];

const MAX_TRANSACTION_CHARS = 256;
/** As POST /api/ask takes it. */
const MAX_QUESTION_CHARS = 500;

class RequestFailure extends Error {
  constructor(
    readonly code: RequestErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Answers MQTT requests; one instance per gateway, disposed with the daemon. */
export class RequestHandler {
  /** The subscription filter of requests: `<prefix>/<gw>/request/+`. */
  readonly filter: string;
  readonly #o: RequestHandlerOptions & { clock: Clock; maxInflight: number; maxPayloadBytes: number };
  readonly #match: TopicFilter;
  readonly #base: string;
  readonly #pending = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #inflight = 0;
  #ok = 0;
  #unpublished = 0;
  readonly #errors: Partial<Record<RequestErrorCode, number>> = {};

  constructor(options: RequestHandlerOptions) {
    this.#o = {
      ...options,
      clock: options.clock ?? systemClock,
      maxInflight: options.maxInflight ?? 4,
      maxPayloadBytes: options.maxPayloadBytes ?? 64 * 1024,
    };
    this.#base = options.topics.base;
    this.filter = `${this.#base}/request/+`;
    this.#match = new TopicFilter(this.filter);
  }

  /** The response topic of `op` when the request names none. */
  responseTopic(op: string): string {
    return `${this.#base}/response/${op}`;
  }

  /** Whether `topic` is a request this handler answers (the daemon routes it here, not to ingest). */
  accepts(topic: string): boolean {
    return this.#match.match(topic) !== null;
  }

  /**
   * Answers one request. Resolves once the response is published (or could not be); never rejects.
   * Topics outside `filter`, and requests after `dispose()`, are ignored.
   */
  handle(topic: string, payload: Buffer | string, properties?: RequestProperties): Promise<void> {
    const op = this.#match.match(topic)?.[0];
    if (op === undefined || this.#abort.signal.aborted) return Promise.resolve();
    const work = this.#answer(op, payload, properties);
    this.#pending.add(work);
    void work.finally(() => this.#pending.delete(work));
    return work;
  }

  stats(): RequestStats {
    return {
      ok: this.#ok,
      errors: { ...this.#errors },
      unpublished: this.#unpublished,
      inflight: this.#inflight,
    };
  }

  /** Aborts the asks under way and waits until every started request is answered. Safe to call twice. */
  async dispose(): Promise<void> {
    this.#abort.abort();
    await Promise.all([...this.#pending]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  async #answer(
    op: string,
    payload: Buffer | string,
    properties: RequestProperties | undefined,
  ): Promise<void> {
    const { responseTopic, correlationData } = properties ?? {};
    let topic = this.responseTopic(op);
    let response: RequestResponse;
    let transaction: string | number | undefined;
    const busy = this.#inflight >= this.#o.maxInflight;
    const refused = responseTopic === undefined ? undefined : this.#refuseResponseTopic(responseTopic);
    if (responseTopic !== undefined && refused === undefined) topic = responseTopic;
    this.#inflight += 1;
    try {
      const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
      if (size > this.#o.maxPayloadBytes) {
        throw new RequestFailure(
          'too-large',
          `payload of ${size} bytes exceeds ${this.#o.maxPayloadBytes} bytes`,
        );
      }
      // Parsed before anything else is checked, so every later refusal echoes the transaction.
      const body = parseBody(payload);
      transaction = body.transaction;
      if (refused !== undefined) throw new RequestFailure('bad-response-topic', refused);
      if (busy) {
        throw new RequestFailure(
          'busy',
          `${this.#o.maxInflight} requests are being answered; try again later`,
        );
      }
      const { transaction: _, ...fields } = body.fields;
      response = { status: 'ok', ...echo(transaction), result: await this.#run(op, fields) };
      this.#ok += 1;
    } catch (error) {
      const failure =
        error instanceof RequestFailure
          ? error
          : new RequestFailure('failed', `${op} failed: ${(error as Error).message ?? String(error)}`);
      if (!(error instanceof RequestFailure)) this.#o.logger.warn({ op, err: error }, 'request failed');
      this.#errors[failure.code] = (this.#errors[failure.code] ?? 0) + 1;
      response = { status: 'error', ...echo(transaction), code: failure.code, error: failure.message };
    }
    try {
      await this.#o.publish(topic, JSON.stringify(response), {
        qos: 1,
        retain: false,
        properties: { contentType: 'application/json', ...(correlationData ? { correlationData } : {}) },
      });
    } catch (error) {
      this.#unpublished += 1;
      this.#o.logger.warn({ op, topic, err: (error as Error).message }, 'cannot publish a response');
    } finally {
      this.#inflight -= 1;
    }
  }

  async #run(op: string, fields: Record<string, unknown>): Promise<unknown> {
    switch (op as RequestOp) {
      case 'status':
        return this.#o.status();
      case 'query': {
        const outcome = await this.#o.queryResults(fields);
        if (!outcome.ok) throw new RequestFailure('invalid', outcome.error);
        return outcome.value;
      }
      case 'ask':
        return this.#ask(parseAsk(fields));
      default:
        throw new RequestFailure('unknown-op', `unknown op "${op}"; ops: ${REQUEST_OPS.join(', ')}`);
    }
  }

  async #ask(request: AskRequest): Promise<unknown> {
    const ask = this.#o.ask;
    if (!ask)
      throw new RequestFailure('unavailable', 'ask is not available: this gateway has no model for it');
    const controller = new AbortController();
    const onStop = () => controller.abort();
    this.#abort.signal.addEventListener('abort', onStop, { once: true });
    const seconds = (this.#o.askTimeoutMs ?? 120_000) / 1000;
    let timer: Timer | undefined;
    const stopped = new Promise<never>((_, reject) => {
      timer = this.#o.clock.setTimeout(() => controller.abort(), seconds * 1000);
      controller.signal.addEventListener('abort', () =>
        reject(
          this.#abort.signal.aborted
            ? new RequestFailure('unavailable', 'the gateway is stopping')
            : new RequestFailure('timeout', `no answer within ${seconds} s`),
        ),
      );
    });
    try {
      // An ask that ignores its signal still gets its answer cut off here.
      return await Promise.race([ask(request, controller.signal), stopped]);
    } catch (error) {
      if (error instanceof RequestFailure) throw error;
      throw new RequestFailure(
        askErrorCode(error),
        `ask failed: ${(error as Error).message ?? String(error)}`,
      );
    } finally {
      timer?.cancel();
      controller.abort();
      this.#abort.signal.removeEventListener('abort', onStop);
    }
  }

  /** Why a v5 response topic is refused: it must be publishable and must not feed back into this gateway. */
  #refuseResponseTopic(topic: string): string | undefined {
    if (topic === '' || /[+#]/.test(topic) || topic.startsWith('$')) {
      return 'responseTopic: must be a plain topic without wildcards, not empty, not under $';
    }
    // A response on the gateway's own topics would pose as its status or results, or loop as a request.
    if (topic.startsWith(`${this.#base}/`) && !topic.startsWith(`${this.#base}/response/`)) {
      return `responseTopic: only ${this.#base}/response/... may be used under ${this.#base}/`;
    }
    return undefined;
  }
}

/** An ask error that carries an HTTP status (as the daemon's AskError does) keeps its meaning on MQTT. */
function askErrorCode(error: unknown): RequestErrorCode {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  if (status === 503) return 'unavailable';
  if (status === 504) return 'timeout';
  if (typeof status === 'number' && status >= 400 && status < 500) return 'invalid';
  return 'failed';
}

function echo(transaction: string | number | undefined): { transaction?: string | number } {
  return transaction === undefined ? {} : { transaction };
}

/** The request's JSON object (an empty payload is `{}`) and its validated transaction. */
function parseBody(payload: Buffer | string): {
  fields: Record<string, unknown>;
  transaction: string | number | undefined;
} {
  const text = (typeof payload === 'string' ? payload : payload.toString('utf8')).trim();
  let value: unknown = {};
  if (text !== '') {
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new RequestFailure('bad-json', `payload is not JSON: ${(error as Error).message}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RequestFailure('bad-json', 'payload must be a JSON object');
  }
  const fields = value as Record<string, unknown>;
  const t = fields.transaction;
  if (t === undefined || t === null) return { fields, transaction: undefined };
  const valid =
    (typeof t === 'string' && t.length <= MAX_TRANSACTION_CHARS) ||
    (typeof t === 'number' && Number.isFinite(t));
  if (!valid) {
    throw new RequestFailure(
      'invalid',
      `transaction: expected a string (up to ${MAX_TRANSACTION_CHARS}) or a number`,
    );
  }
  return { fields, transaction: t as string | number };
}

function parseAsk(fields: Record<string, unknown>): AskRequest {
  const { question, since, until, kinds, ...rest } = fields;
  const extra = Object.keys(rest);
  if (extra.length > 0)
    throw new RequestFailure('invalid', `unknown field ${extra[0]}; ask takes question, since, until, kinds`);
  if (typeof question !== 'string' || question.trim() === '') {
    throw new RequestFailure('invalid', 'question: expected a non-empty string');
  }
  if (question.length > MAX_QUESTION_CHARS) {
    throw new RequestFailure('invalid', `question: longer than ${MAX_QUESTION_CHARS} characters`);
  }
  const request: AskRequest = { question: question.trim() };
  for (const [name, value] of [
    ['since', since],
    ['until', until],
  ] as const) {
    if (value === undefined) continue;
    if (typeof value !== 'string' && !(typeof value === 'number' && Number.isFinite(value))) {
      throw new RequestFailure('invalid', `${name}: expected ISO 8601 or epoch milliseconds`);
    }
    request[name] = value;
  }
  if (kinds !== undefined) {
    const valid =
      Array.isArray(kinds) &&
      kinds.length <= 8 &&
      kinds.every((k) => typeof k === 'string' && k.length > 0 && k.length <= 32);
    if (!valid)
      throw new RequestFailure(
        'invalid',
        'kinds: expected up to 8 kind names (frame, audio, anomaly, digest)',
      );
    request.kinds = kinds as string[];
  }
  return request;
}
