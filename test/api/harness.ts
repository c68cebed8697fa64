import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { type ApiServer, type ApiServerOptions, StoreChanges, startApiServer } from '../../src/api/index.js';
import { createLogger } from '../../src/common/index.js';
import type { NewEvent } from '../../src/store/index.js';
import { Store } from '../../src/store/index.js';
import { outboxLimits } from '../helpers/outbox.js';

export interface ApiHarness {
  store: Store;
  server: ApiServer;
  url: string;
  dir: string;
  changes: StoreChanges;
  /** Stores a result (as the findings stage does) and notifies the stream; returns its id. */
  addResult(fields?: Partial<NewResultFields>): string;
  /** Stores an event and notifies the stream; returns its id. */
  addEvent(fields?: Partial<NewEvent>): number;
  /** Writes a file under the media folder; returns its media path. */
  addMedia(path: string, bytes: Uint8Array): string;
  get(path: string, init?: RequestInit): Promise<Response>;
  json<T = Record<string, unknown>>(path: string, init?: RequestInit): Promise<T>;
  /** Rows of the store's database, read through a second connection. */
  count(table: string): number;
  close(): Promise<void>;
}

export interface NewResultFields {
  id: string;
  kind: string;
  source: string;
  ts: number;
  output: Record<string, unknown>;
  media: string | undefined;
}

/** Options of the harness's own server on top of a temp store; `token` adds the header to `get`. */
export type HarnessOptions = Partial<Omit<ApiServerOptions, 'queries' | 'mediaFile'>>;

let serial = 0;

/** A real API server on port 0 over a real Store in a temp folder. */
export async function startApi(options: HarnessOptions = {}): Promise<ApiHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'outpost-api-'));
  const store = Store.open({
    dataDir: dir,
    outbox: outboxLimits({ maxMessages: 1000, maxBytes: 1_000_000 }),
  });
  const changes = new StoreChanges();
  let server: ApiServer;
  try {
    server = await startServer();
  } catch (error) {
    store.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  function startServer() {
    return startApiServer({
      host: '127.0.0.1',
      port: 0,
      queries: store.queries,
      mediaFile: (path) => store.media.resolve(path),
      status: () => ({ gatewayId: 'gw-api' }),
      readiness: () => ({ store: { ok: !store.closed, required: true } }),
      logger: createLogger({ level: 'silent', format: 'json' }),
      now: () => Date.now(),
      changes,
      ...options,
    });
  }
  const headers = (init?: RequestInit) => {
    const h = new Headers(init?.headers);
    if (options.token && !h.has('authorization')) h.set('authorization', `Bearer ${options.token}`);
    return h;
  };
  let reader: Database.Database | undefined;
  const harness: ApiHarness = {
    store,
    server,
    url: server.url,
    dir,
    changes,
    addResult(fields = {}) {
      const id = fields.id ?? `job-${++serial}`;
      store.jobs.insertResult(
        {
          id,
          kind: fields.kind ?? 'frame',
          source: fields.source ?? 'yard',
          ts: fields.ts ?? Date.now(),
          model: 'gemma-3n-e2b',
          variant: 'Q4_K_M',
          latencyMs: 1234,
          output: fields.output ?? { description: 'an empty yard', objects: [], alert: false },
          media: fields.media,
        },
        Date.now(),
      );
      changes.notify();
      return id;
    },
    addEvent(fields = {}) {
      const row = store.insertEvent(
        {
          ts: Date.now(),
          source: 'boiler',
          kind: 'anomaly',
          severity: 'warning',
          message: 'temp left its range',
          detail: { value: 99 },
          ...fields,
        },
        Date.now(),
      );
      changes.notify();
      return row.id;
    },
    addMedia(path, bytes) {
      const file = store.media.resolve(path);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, bytes);
      return path;
    },
    get: (path, init) => fetch(`${server.url}${path}`, { ...init, headers: headers(init) }),
    async json<T>(path: string, init?: RequestInit) {
      const response = await fetch(`${server.url}${path}`, { ...init, headers: headers(init) });
      if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${await response.text()}`);
      return (await response.json()) as T;
    },
    count(table) {
      reader ??= new Database(join(dir, 'outpost.db'), { readonly: true });
      return (reader.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }).n;
    },
    async close() {
      reader?.close();
      await server.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

/** One server-sent event as a client parses it. */
export interface SseMessage {
  event: string;
  id: string | undefined;
  data: string;
}

export interface SseClient {
  response: Response;
  messages: SseMessage[];
  /** comments (heartbeats) received */
  comments: number;
  /** the id of the last message that carried one */
  lastId: string | undefined;
  /** Waits until `count` messages with data have arrived. */
  waitFor(count: number, timeoutMs?: number): Promise<SseMessage[]>;
  /** resolves when the server ends the stream */
  ended: Promise<void>;
  close(): void;
}

/** A fetch-based SSE client (what the web page does: EventSource cannot send the Authorization header). */
export async function openStream(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const controller = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: controller.signal,
  });
  const client: SseClient = {
    response,
    messages: [],
    comments: 0,
    lastId: undefined,
    async waitFor(count, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (client.messages.length < count) {
        if (Date.now() > deadline) {
          throw new Error(`waited for ${count} events, got ${client.messages.length}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return client.messages.slice(0, count);
    },
    ended: Promise.resolve(),
    close: () => controller.abort(),
  };
  client.ended = (async () => {
    if (!response.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    let message: SseMessage = { event: 'message', id: undefined, data: '' };
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line === '') {
            if (message.id !== undefined) client.lastId = message.id;
            if (message.data !== '') client.messages.push(message);
            message = { event: 'message', id: undefined, data: '' };
          } else if (line.startsWith(':')) client.comments++;
          else {
            const colon = line.indexOf(':');
            const field = line.slice(0, colon);
            const value = line.slice(colon + 2);
            if (field === 'event') message.event = value;
            else if (field === 'id') message.id = value;
            else if (field === 'data') message.data += value;
          }
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return client;
}
