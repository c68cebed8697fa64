/**
 * `outpost query results|events|status|ask`: reads a running gateway over its HTTP API (Node's fetch).
 * Exit codes: 0 ok, 1 the gateway could not be reached or refused the request (one line on stderr), 2 bad usage.
 */
import { type Command, type CommanderError, InvalidArgumentError } from 'commander';
import { OutpostError } from '../common/index.js';

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
const DEFAULT_URL = 'http://127.0.0.1:8080';
/** How long a read may take, and an `ask` (the local model answers it), seconds. */
const READ_TIMEOUT_S = 10;
const ASK_TIMEOUT_S = 300;
const SUMMARY_CHARS = 100;

/** The gateway could not be reached, or answered with an error. */
export class GatewayRequestError extends OutpostError {
  readonly code = 'outpost.query.http';
  override readonly name = 'GatewayRequestError';
}

interface ConnectionOptions {
  url?: string;
  token?: string;
  json?: boolean;
  timeout?: number;
}

/** Where the gateway is: --url, else $OUTPOST_URL, else the local default port (or $OUTPOST_HTTP_PORT). */
function gatewayUrl(opts: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): string {
  const port = env.OUTPOST_HTTP_PORT;
  return opts.url ?? env.OUTPOST_URL ?? (port ? `http://127.0.0.1:${port}` : DEFAULT_URL);
}

const positiveInt = (text: string): number => {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

const positiveNumber = (text: string): number => {
  const n = Number(text);
  if (!(n > 0 && Number.isFinite(n))) throw new InvalidArgumentError('must be a positive number');
  return n;
};

const AGO_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

/**
 * A time as the API takes it (ISO 8601 or epoch ms, passed through) or a span ago such as `30m`, `2h`, `7d`
 * (sent as the ISO 8601 of that moment).
 */
export function parseTimeArg(text: string, now = Date.now()): string {
  const value = text.trim();
  if (/^\d{1,15}$/.test(value)) return value;
  if (/^\d{4}-\d{2}-\d{2}/.test(value) && Number.isFinite(Date.parse(value))) return value;
  const ago = /^(\d{1,9})(s|m|h|d)$/.exec(value);
  if (ago) return new Date(now - Number(ago[1]) * AGO_UNITS[ago[2]!]!).toISOString();
  throw new InvalidArgumentError('must be ISO 8601, epoch milliseconds, or a span ago such as 30m, 2h, 7d');
}

/** Commander hands a parser (value, previous): `previous` must not become `now`. */
const timeArg = (text: string): string => parseTimeArg(text);

const gatewayUrlArg = (text: string): string => {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new InvalidArgumentError('must be an http:// or https:// URL, e.g. http://gateway.local:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError('must be an http:// or https:// URL, e.g. http://gateway.local:8080');
  }
  return text;
};

/** Usage errors (unknown option, bad value, missing argument, bare `outpost query`) exit 2; help exits 0. */
function exitCodeOf(error: CommanderError): number {
  if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return 0;
  if (error.code === 'commander.help') return error.exitCode === 0 ? 0 : EXIT_USAGE;
  if (error.code.startsWith('commander.')) return EXIT_USAGE;
  return error.exitCode;
}

function withConnection(command: Command): Command {
  return command
    .option('-u, --url <url>', `gateway HTTP URL (default: $OUTPOST_URL, else ${DEFAULT_URL})`, gatewayUrlArg)
    .option('-t, --token <token>', 'bearer token (default: $OUTPOST_HTTP_TOKEN)')
    .option('--json', 'print the raw JSON answer')
    .option('--timeout <seconds>', 'give up after this many seconds', positiveNumber);
}

export function registerQueryCommands(program: Command): void {
  const query = program
    .command('query')
    .description('read results, events and status from a running gateway, or ask it a question')
    // Set before the subcommands are added, so they inherit it.
    .exitOverride((error) => process.exit(exitCodeOf(error)));

  const results = withConnection(query.command('results'))
    .description('list model results, newest first')
    .option('--kind <kind>', 'only this kind (anomaly, digest, frame, audio...)')
    .option('--source <source>', 'only this device, camera or audio source')
    .option('--since <time>', 'from this time: ISO 8601, epoch ms, or a span ago (30m, 2h, 7d)', timeArg)
    .option('--until <time>', 'before this time (same forms as --since)', timeArg)
    .option('--label <label>', 'only results with this label')
    .option('--q <text>', 'full-text search in the findings')
    .option('--limit <n>', 'at most this many', positiveInt)
    .option('--cursor <cursor>', 'continue after a previous page (its `next`)')
    .action(async (opts: ConnectionOptions & Record<string, string | number | undefined>) => {
      const params = pick(opts, ['kind', 'source', 'since', 'until', 'label', 'q', 'limit', 'cursor']);
      await run(results, opts, { path: 'api/results', params }, (body) => formatResults(body));
    });

  const events = withConnection(query.command('events'))
    .description('list sensor anomalies and frame/audio alerts, newest first')
    .option('--source <source>', 'only this device, camera or audio source')
    .option('--kind <kind>', 'only this kind (anomaly, alert)')
    .option('--since <time>', 'from this time: ISO 8601, epoch ms, or a span ago (30m, 2h, 7d)', timeArg)
    .option('--until <time>', 'before this time (same forms as --since)', timeArg)
    .option('--limit <n>', 'at most this many', positiveInt)
    .option('--cursor <id>', 'continue after a previous page (its `next`)', positiveInt)
    .action(async (opts: ConnectionOptions & Record<string, string | number | undefined>) => {
      const params = pick(opts, ['source', 'kind', 'since', 'until', 'limit']);
      if (opts.cursor !== undefined) params.before = String(opts.cursor);
      await run(events, opts, { path: 'api/events', params }, (body) => formatEvents(body));
    });

  const status = withConnection(query.command('status'))
    .description("the gateway's state: broker, queues, model, jobs, memory")
    .action(async (opts: ConnectionOptions) => {
      await run(status, opts, { path: 'api/status' }, (body) => formatStatus(body));
    });

  const ask = withConnection(query.command('ask'))
    .description('ask the local model a question about the stored findings')
    .argument('<question...>', 'the question (words are joined with spaces)')
    .option('--since <time>', 'only findings from this time: ISO 8601, epoch ms, or a span ago', timeArg)
    .option('--until <time>', 'only findings before this time (same forms as --since)', timeArg)
    .action(async (words: string[], opts: ConnectionOptions & { since?: string; until?: string }) => {
      const question = words.join(' ').trim();
      if (question === '') {
        ask.error('error: the question is empty', { exitCode: EXIT_USAGE, code: 'outpost.usage' });
      }
      const body = { question, ...pick(opts, ['since', 'until']) };
      await run(ask, opts, { path: 'api/ask', body, timeoutS: ASK_TIMEOUT_S }, (answer) =>
        formatAnswer(answer),
      );
    });
}

function pick(opts: object, keys: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of keys) {
    const value = (opts as Record<string, unknown>)[key];
    if (value !== undefined) out[key] = String(value);
  }
  return out;
}

interface GatewayRequest {
  /** relative to the gateway URL, so a URL with a path prefix (a reverse proxy) keeps it */
  path: string;
  params?: Record<string, string>;
  /** JSON body: the request is then a POST */
  body?: unknown;
  timeoutS?: number;
}

/** Calls the gateway and prints its answer; a failure ends the command with one line and exit code 1. */
async function run(
  command: Command,
  opts: ConnectionOptions,
  request: GatewayRequest,
  format: (body: unknown) => { out: string; err?: string },
): Promise<void> {
  const output = command.configureOutput();
  const write = (text: string) => (output.writeOut ? output.writeOut(text) : process.stdout.write(text));
  const writeErr = (text: string) => (output.writeErr ? output.writeErr(text) : process.stderr.write(text));
  let body: unknown;
  try {
    body = await callGateway(gatewayUrl(opts), opts.token ?? process.env.OUTPOST_HTTP_TOKEN, {
      ...request,
      timeoutS: opts.timeout ?? request.timeoutS ?? READ_TIMEOUT_S,
    });
  } catch (error) {
    if (!(error instanceof GatewayRequestError)) throw error;
    command.error(`outpost: ${error.message}`, { exitCode: EXIT_FAILURE, code: error.code });
  }
  if (opts.json) {
    write(`${JSON.stringify(body, null, 2)}\n`);
    return;
  }
  const text = format(body);
  write(text.out);
  if (text.err) writeErr(text.err);
}

/** One HTTP request to the gateway: its JSON answer, or a GatewayRequestError with a one-line reason. */
export async function callGateway(
  baseUrl: string,
  token: string | undefined,
  request: GatewayRequest,
): Promise<unknown> {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const url = new URL(request.path, base);
  for (const [key, value] of Object.entries(request.params ?? {})) url.searchParams.set(key, value);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (request.body !== undefined) headers['content-type'] = 'application/json';
  const timeoutS = request.timeoutS ?? READ_TIMEOUT_S;
  let response: Response;
  try {
    response = await fetch(url, {
      method: request.body === undefined ? 'GET' : 'POST',
      headers,
      body: request.body === undefined ? undefined : JSON.stringify(request.body),
      signal: AbortSignal.timeout(timeoutS * 1000),
    });
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      throw new GatewayRequestError(`no answer from the gateway at ${baseUrl} within ${timeoutS} s`);
    }
    throw new GatewayRequestError(`cannot reach the gateway at ${baseUrl}: ${networkReason(error)}`);
  }
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const given = body as { message?: unknown; error?: unknown } | undefined;
    const reason =
      typeof given?.message === 'string'
        ? given.message
        : typeof given?.error === 'string'
          ? given.error
          : response.statusText || 'request failed';
    const hint =
      response.status === 401 && !token
        ? ' (give it with --token or $OUTPOST_HTTP_TOKEN)'
        : response.status === 404 && typeof given?.message === 'string' && /^Route /.test(given.message)
          ? ' (is the gateway older than this command?)'
          : '';
    throw new GatewayRequestError(`${response.status}: ${reason}${hint}`);
  }
  if (body === undefined) {
    throw new GatewayRequestError(`${url.pathname} on ${baseUrl} did not answer with JSON`);
  }
  return body;
}

/** fetch's `TypeError: fetch failed` hides the reason in `cause` (ECONNREFUSED, ENOTFOUND, a TLS error...). */
function networkReason(error: unknown): string {
  let cause = (error as { cause?: unknown }).cause ?? error;
  const inner = (cause as { errors?: unknown[] }).errors;
  if (!(cause as { code?: unknown }).code && Array.isArray(inner) && inner.length > 0) cause = inner[0];
  const { code, message } = cause as { code?: unknown; message?: unknown };
  if (typeof code === 'string') return code;
  return typeof message === 'string' ? message : String(cause);
}

type Row = Record<string, unknown>;

const text = (value: unknown): string =>
  value === undefined || value === null ? '' : typeof value === 'string' ? value : String(value);

/** `2024-05-01T12:00:05Z`: ISO 8601 to the second. */
function formatTime(value: unknown): string {
  const ms = typeof value === 'number' ? value : Date.parse(text(value));
  return Number.isFinite(ms) ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : text(value);
}

function oneLine(value: string, max = SUMMARY_CHARS): string {
  const line = value.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** A result's one-line summary: what the model said (description, transcript, summary), else its JSON. */
export function summarize(output: unknown): string {
  if (typeof output !== 'object' || output === null) return oneLine(text(output));
  const o = output as Row;
  for (const key of ['description', 'transcript', 'summary']) {
    if (typeof o[key] === 'string' && o[key] !== '') return oneLine(o[key] as string);
  }
  return oneLine(JSON.stringify(output));
}

/** Columns padded to their widest cell; the last column is left as it is. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[header, ...rows].map(line).join('\n')}\n`;
}

function list(body: unknown, key: string): { rows: Row[]; next: unknown } {
  const b = (body ?? {}) as Row;
  const rows = Array.isArray(b[key]) ? (b[key] as Row[]) : [];
  return { rows, next: b.next ?? null };
}

const more = (next: unknown): string | undefined =>
  next === null || next === undefined ? undefined : `more: --cursor ${text(next)}\n`;

function formatResults(body: unknown): { out: string; err?: string } {
  const { rows, next } = list(body, 'results');
  if (rows.length === 0) return { out: '', err: 'no results\n' };
  const cells = rows.map((r) => [formatTime(r.ts), text(r.kind), text(r.source), summarize(r.output)]);
  return { out: table(['TIME', 'KIND', 'SOURCE', 'SUMMARY'], cells), err: more(next) };
}

function formatEvents(body: unknown): { out: string; err?: string } {
  const { rows, next } = list(body, 'events');
  if (rows.length === 0) return { out: '', err: 'no events\n' };
  const cells = rows.map((r) => [
    formatTime(r.ts),
    text(r.source),
    text(r.severity),
    oneLine(text(r.message), 200),
  ]);
  return { out: table(['TIME', 'SOURCE', 'SEVERITY', 'MESSAGE'], cells), err: more(next) };
}

function formatAnswer(body: unknown): { out: string } {
  const b = (body ?? {}) as Row;
  const ids = (Array.isArray(b.results) ? b.results : []).map((r) =>
    typeof r === 'object' && r !== null ? text((r as Row).id) : text(r),
  );
  const answer = text(b.answer).trim() || '(no answer)';
  return { out: `${answer}\n${ids.length > 0 ? `\nresults: ${ids.join(', ')}\n` : ''}` };
}

function uptime(seconds: unknown): string {
  if (typeof seconds !== 'number') return '?';
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return `${m}m ${Math.floor(seconds % 60)}s`;
}

const mb = (bytes: unknown): string => (typeof bytes === 'number' ? `${(bytes / 1e6).toFixed(0)} MB` : '?');

/** The status lines an operator looks at first; `--json` has everything. */
export function formatStatus(body: unknown): { out: string } {
  const s = (body ?? {}) as Row;
  const obj = (value: unknown): Row => (typeof value === 'object' && value !== null ? (value as Row) : {});
  const broker = obj(s.broker);
  const http = obj(s.http);
  const queues = obj(s.queues);
  const outbox = obj(queues.outbox);
  const model = obj(s.model);
  const jobs = obj(s.jobs);
  const memory = obj(s.memory);
  const lines: [string, string][] = [
    ['gateway', `${text(s.gatewayId)} ${text(s.version)}, ${text(s.state)}, up ${uptime(s.uptimeSeconds)}`],
    [
      'broker',
      `${text(broker.url)} ${broker.connected === true ? 'connected' : 'NOT CONNECTED'}` +
        `${broker.embedded === true ? ' (embedded)' : ''}, ${text(broker.reconnects ?? 0)} reconnects` +
        (broker.lastError ? `, last error: ${text(broker.lastError)}` : ''),
    ],
    ['http', `${text(http.url)}${http.auth === true ? ' (token required)' : ''}`],
    [
      'model',
      [
        text(model.state) || '?',
        text(model.variant ?? model.model),
        model.contextSize ? `context ${text(model.contextSize)}` : '',
        model.reason ? `(${text(model.reason)})` : '',
      ]
        .filter(Boolean)
        .join(' '),
    ],
    [
      'queues',
      `journal ${text(queues.journalPending ?? '?')} pending, outbox ${text(outbox.messages ?? '?')} messages` +
        (outbox.dropped ? `, ${text(outbox.dropped)} dropped` : ''),
    ],
    [
      'jobs',
      ['queued', 'running', 'waiting-model', 'waiting-capability', 'done', 'failed', 'dropped']
        .filter((k) => typeof jobs[k] === 'number')
        .map((k) => `${k} ${text(jobs[k])}`)
        .join(', ') || '?',
    ],
    ['memory', `rss ${mb(memory.rssBytes)}, heap ${mb(memory.heapUsedBytes)}`],
  ];
  return { out: lines.map(([k, v]) => `${`${k}:`.padEnd(9)}${v}\n`).join('') };
}
