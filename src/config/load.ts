import { existsSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { z } from 'zod';
import { grammarSchemaProblem } from '../common/index.js';
import { ConfigError } from './errors.js';
import { type ConfigKey, configKeys } from './keys.js';
import { type Config, configSchema, routeMaxBytes } from './schema.js';

export interface LoadConfigOptions {
  /** Config file given with --config; it must exist. Absent: $OUTPOST_CONFIG, else ./outpost.yaml if present. */
  file?: string;
  /** Environment to read OUTPOST_* overrides from. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Folder that relative paths start from. Default process.cwd(). */
  cwd?: string;
  /** Host name used as the default gateway id. Default os.hostname(). */
  hostname?: string;
}

/** Every configurable key, derived once from the schema. */
export const CONFIG_KEYS: readonly ConfigKey[] = configKeys(configSchema);
/** Environment variables that are not keys but are understood. */
const EXTRA_ENV = new Set(['OUTPOST_CONFIG']);

type Raw = Record<string, unknown>;

/** Loads, overrides from the environment, validates and freezes the configuration; throws ConfigError. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const problems: string[] = [];

  const { raw, label } = readFile(options.file ?? env.OUTPOST_CONFIG, cwd, problems);
  const fromEnv = applyEnv(raw, env, problems);
  if (problems.length > 0) throw new ConfigError(problems);

  const result = configSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.flatMap((issue) => describeIssue(issue, raw, label, fromEnv).split('\n')),
    );
  }
  const parsed = result.data;
  const gatewayId = parsed.gatewayId ?? sanitizeHostname(options.hostname ?? osHostname());
  const config: Config = {
    ...parsed,
    dataDir: resolve(cwd, parsed.dataDir),
    gatewayId,
    mqtt: { ...parsed.mqtt, clientId: parsed.mqtt.clientId ?? `outpost-${gatewayId}` },
    // Each route's payload limit, its kind's default filled in, so --print-config shows it.
    ingest: {
      ...parsed.ingest,
      routes: parsed.ingest.routes.map((route) => ({ ...route, maxBytes: routeMaxBytes(route) })),
    },
    http: { ...parsed.http, host: parsed.http.host ?? (parsed.http.token ? '0.0.0.0' : '127.0.0.1') },
  };
  problems.push(...crossChecks(config));
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(config);
}

function readFile(file: string | undefined, cwd: string, problems: string[]): { raw: Raw; label: string } {
  const path = resolve(cwd, file ?? 'outpost.yaml');
  const label = file ?? 'outpost.yaml';
  if (!existsSync(path)) {
    if (file !== undefined) problems.push(`${label}: no such file`);
    return { raw: {}, label };
  }
  try {
    const doc: unknown = parseYaml(readFileSync(path, 'utf8'));
    if (doc === null || doc === undefined) return { raw: {}, label };
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      problems.push(`${label}: expected a mapping of sections, found ${kindOf(doc)}`);
      return { raw: {}, label };
    }
    // A section written with nothing under it (`http:`) is YAML null: read it as empty, not as an error.
    const raw = doc as Raw;
    for (const [key, value] of Object.entries(raw)) if (value === null) raw[key] = {};
    return { raw, label };
  } catch (error) {
    problems.push(`${label}: not valid YAML: ${(error as Error).message.split('\n')[0]}`);
    return { raw: {}, label };
  }
}

/** Writes OUTPOST_* values into `raw`; returns which paths came from which variable. */
function applyEnv(raw: Raw, env: Readonly<Record<string, string | undefined>>, problems: string[]) {
  const fromEnv = new Map<string, string>();
  const known = new Set(CONFIG_KEYS.map((k) => k.env));
  for (const name of Object.keys(env)) {
    if (name.startsWith('OUTPOST_') && !known.has(name) && !EXTRA_ENV.has(name)) {
      const hint = closest(name, [...known]);
      problems.push(`${name}: unknown setting${hint ? ` (did you mean ${hint}?)` : ''}`);
    }
  }
  for (const key of CONFIG_KEYS) {
    const text = env[key.env];
    if (text === undefined) continue;
    const value = coerce(text, key.type);
    if (value === undefined) {
      problems.push(
        `${key.env}: expected ${key.type === 'json' ? 'JSON' : `a ${key.type}`}, found ${show(text)}`,
      );
      continue;
    }
    let node = raw;
    for (const part of key.path.slice(0, -1)) {
      const child = node[part];
      node[part] = child !== null && typeof child === 'object' && !Array.isArray(child) ? child : {};
      node = node[part] as Raw;
    }
    node[key.path.at(-1)!] = value;
    fromEnv.set(key.path.join('.'), key.env);
  }
  return fromEnv;
}

function coerce(text: string, type: ConfigKey['type']): unknown {
  switch (type) {
    case 'string':
      return text;
    case 'number': {
      const n = text.trim() === '' ? Number.NaN : Number(text);
      return Number.isFinite(n) ? n : undefined;
    }
    case 'boolean':
      return /^(true|1|yes|on)$/i.test(text) ? true : /^(false|0|no|off)$/i.test(text) ? false : undefined;
    case 'json':
      try {
        return JSON.parse(text);
      } catch {
        return undefined;
      }
  }
}

function describeIssue(
  issue: z.core.$ZodIssue,
  raw: Raw,
  label: string,
  fromEnv: Map<string, string>,
): string {
  const path = issue.path.map(String);
  const dotted = path.join('.');
  const envName = [...fromEnv].find(([p]) => dotted === p || dotted.startsWith(`${p}.`))?.[1];
  const where = envName ?? `${label}: ${dotted || '(top level)'}`;
  if (issue.code === 'unrecognized_keys') {
    // The names one level below `path`: leaves and sections alike (`htpp` -> http).
    const names = new Set(
      CONFIG_KEYS.filter((k) => k.path.length > path.length && path.every((p, i) => k.path[i] === p)).map(
        (k) => k.path[path.length]!,
      ),
    );
    return issue.keys
      .map((key) => {
        const hint = closest(key, [...names]);
        return `${envName ?? label}: ${[...path, key].join('.')}: unknown key${hint ? ` (did you mean ${hint}?)` : ''}`;
      })
      .join('\n');
  }
  if (issue.code === 'invalid_key') {
    // A record's key (a camera name): say what is wrong with the key, not with its value.
    const key = path.at(-1) ?? '';
    const why = issue.issues.map((i) => i.message).join('; ');
    return `${envName ?? label}: ${dotted}: the key ${show(key)} is not ${why}`;
  }
  const secret = CONFIG_KEYS.some((k) => k.secret && k.path.join('.') === dotted);
  const found = valueAt(raw, path);
  const expected = issue.message.replace(/^Invalid input: /, '').replace(/, received \w+$/, '');
  return `${where}: ${expected}, found ${found === undefined ? 'nothing' : secret ? '(secret)' : show(found)}`;
}

function crossChecks(config: Config): string[] {
  const problems: string[] = [];
  if (!isLoopback(config.http.host) && !config.http.token) {
    problems.push(
      `http.host: ${config.http.host} is beyond loopback; set http.token (OUTPOST_HTTP_TOKEN) first`,
    );
  }
  if (
    !config.mqtt.url &&
    !isLoopback(config.broker.host) &&
    !(config.broker.username && config.broker.password)
  ) {
    problems.push(
      `broker.host: the embedded broker on ${config.broker.host} is beyond loopback; set broker.username and broker.password first`,
    );
  }
  if (config.mqtt.reconnectMin > config.mqtt.reconnectMax) {
    problems.push('mqtt.reconnectMin: must not exceed mqtt.reconnectMax');
  }
  if (Boolean(config.mqtt.cert) !== Boolean(config.mqtt.key)) {
    problems.push('mqtt.cert, mqtt.key: give both or neither');
  }
  const names = new Set<string>();
  for (const route of config.ingest.routes) {
    if (names.has(route.name)) problems.push(`ingest.routes: route name "${route.name}" is used twice`);
    names.add(route.name);
    const captures = route.filter.split('/').filter((level) => level === '+' || level === '#').length;
    if (route.kind === 'sensor' && (captures < 1 || captures > 2)) {
      problems.push(
        `ingest.routes.${route.name}.filter: a sensor route captures the device (and metric) with 1-2 wildcards`,
      );
    }
    for (const [task, override] of Object.entries(route.tasks ?? {})) {
      const problem = override?.schema && grammarSchemaProblem(override.schema);
      if (problem) {
        problems.push(
          `ingest.routes.${route.name}.tasks.${task}.schema: llama.cpp cannot turn it into a grammar: ${problem}`,
        );
      }
    }
    if (route.kind !== 'sensor' && (captures !== 1 || route.filter.includes('#'))) {
      const what =
        route.kind === 'frame' ? 'frame route captures the camera' : 'audio route captures the source';
      problems.push(`ingest.routes.${route.name}.filter: a ${what} with exactly one "+"`);
    }
  }
  return problems;
}

/** The effective configuration as YAML, secrets masked. */
export function printConfig(config: Config): string {
  const copy = structuredClone(config) as unknown as Raw;
  for (const key of CONFIG_KEYS) {
    if (!key.secret) continue;
    const parent = valueAt(copy, key.path.slice(0, -1)) as Raw | undefined;
    if (parent && parent[key.path.at(-1)!] !== undefined) parent[key.path.at(-1)!] = '********';
  }
  return stringifyYaml(copy);
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function sanitizeHostname(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return clean.slice(0, 64) || 'gateway';
}

function valueAt(raw: unknown, path: readonly string[]): unknown {
  let node = raw;
  for (const part of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Raw)[part];
  }
  return node;
}

function kindOf(value: unknown): string {
  return Array.isArray(value) ? 'a list' : value === null ? 'null' : `a ${typeof value}`;
}

function show(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : (JSON.stringify(value) ?? String(value));
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The candidate within edit distance 2 (or a third of its length) of `word`, if any. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    row = next;
  }
  return row[b.length]!;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
