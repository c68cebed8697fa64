/**
 * Writes the files generated from `src/config/schema.ts`:
 *   schema/outpost.schema.json  JSON Schema of outpost.yaml for editors (YAML language server)
 *   docs/configuration.md       every key with its environment variable, type and default
 *
 * `npm run schema` writes them; `npm run schema:check` (`--check`) writes nothing and exits 1 when either
 * differs from what the schema gives.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { CONFIG_KEYS, type ConfigKey, configSchema } from '../src/config/index.js';

export const SCHEMA_PATH = 'schema/outpost.schema.json';
export const DOCS_PATH = 'docs/configuration.md';
const SCHEMA_ID = 'urn:outpost:config';
const TITLE = 'Outpost configuration (outpost.yaml)';

/** The part of a JSON Schema node this script reads or writes. */
interface JsonNode {
  [keyword: string]: unknown;
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, JsonNode>;
  required?: string[];
  items?: JsonNode;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
}

/** The node of `path` inside an object schema. */
function nodeAt(root: JsonNode, path: readonly string[]): JsonNode {
  let node = root;
  for (const part of path) {
    const child = node.properties?.[part];
    if (!child) throw new Error(`JSON Schema has no node for ${path.join('.')}`);
    node = child;
  }
  return node;
}

/** The editor JSON Schema: zod's input schema, plus `$id`, a title and each key's environment variable. */
export function buildJsonSchema(): JsonNode {
  const schema = z.toJSONSchema(configSchema, { io: 'input' }) as JsonNode;
  for (const key of CONFIG_KEYS) {
    const node = nodeAt(schema, key.path);
    node.description = `${node.description ?? key.description} Environment: ${key.env}.`;
    node['x-env'] = key.env;
    // zod copies the `secret` meta as is; a vendor keyword says it is not JSON Schema.
    if ('secret' in node) delete node.secret;
    if (key.secret) node['x-secret'] = true;
  }
  const { $schema, ...rest } = schema;
  return { $schema, $id: SCHEMA_ID, title: TITLE, ...rest };
}

export function renderJsonSchema(): string {
  return `${JSON.stringify(buildJsonSchema(), null, 2)}\n`;
}

// ---------------------------------------------------------------------------------------------------------
// Markdown

/** Escapes text for a table cell: `|` everywhere, `<` outside code spans (it would start an HTML tag). */
function cell(text: string): string {
  return text
    .split('`')
    .map((part, i) => (i % 2 === 0 ? part.replace(/</g, '&lt;') : part))
    .join('`')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');
}

const code = (text: string) => `\`${text}\``;

const isBig = (value: unknown) => value !== null && typeof value === 'object';

function formatDefault(value: unknown): string {
  if (value === undefined) return '';
  if (isBig(value)) return 'see below';
  return code(typeof value === 'string' ? value : JSON.stringify(value));
}

function formatType(node: JsonNode): string {
  if (node.enum) return `one of ${node.enum.map((v) => code(String(v))).join(', ')}`;
  const parts: string[] = [node.type === 'array' ? 'list' : (node.type ?? 'any')];
  if (node.type === 'integer' || node.type === 'number') {
    const max =
      node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER ? node.maximum : undefined;
    if (node.minimum !== undefined && max !== undefined) parts.push(`${node.minimum} to ${max}`);
    else if (node.minimum !== undefined) parts.push(`≥ ${node.minimum}`);
    else if (max !== undefined) parts.push(`≤ ${max}`);
    if (node.exclusiveMinimum !== undefined) parts.push(`> ${node.exclusiveMinimum}`);
  }
  if (node.type === 'string') {
    if (node.minLength !== undefined && node.minLength > 1)
      parts.push(`at least ${node.minLength} characters`);
    if (node.maxLength !== undefined) parts.push(`at most ${node.maxLength} characters`);
  }
  if (node.type === 'array') {
    if (node.minItems !== undefined) parts.push(`at least ${node.minItems}`);
  }
  return parts.join(', ');
}

/** The description without a trailing "Default X." that only repeats the Default column. */
function describe(description: string, shownDefault: string): string {
  const match = /\s*Default:? (.+)\.$/.exec(description);
  if (match && shownDefault !== '' && code(match[1] ?? '') === shownDefault) {
    return description.slice(0, match.index);
  }
  return description;
}

function keyRow(key: ConfigKey, node: JsonNode): string {
  const shownDefault = formatDefault(node.default);
  const name = code(key.path.join('.')) + (key.secret ? ' (secret)' : '');
  const env = code(key.env) + (key.type === 'json' ? ' (JSON)' : '');
  return `| ${name} | ${env} | ${cell(formatType(node))} | ${cell(shownDefault)} | ${cell(describe(key.description, shownDefault))} |`;
}

/** Fields of a list of objects (ingest.routes) as their own table. */
function itemTable(key: ConfigKey, node: JsonNode): string[] {
  const items = node.items;
  if (items?.type !== 'object' || !items.properties) return [];
  const lines = [
    '',
    `Each entry of ${code(key.path.join('.'))}:`,
    '',
    '| Field | Type | Default | Description |',
    '| --- | --- | --- | --- |',
  ];
  for (const [field, child] of Object.entries(items.properties)) {
    const shownDefault = formatDefault(child.default);
    const required = items.required?.includes(field) ? ' (required)' : '';
    lines.push(
      `| ${code(field)}${required} | ${cell(formatType(child))} | ${cell(shownDefault)} | ${cell(describe(child.description ?? '', shownDefault))} |`,
    );
  }
  return lines;
}

export function renderDocs(): string {
  const schema = buildJsonSchema();
  const sections = new Map<string, ConfigKey[]>();
  for (const key of CONFIG_KEYS) {
    const section = key.path.slice(0, -1).join('.');
    sections.set(section, [...(sections.get(section) ?? []), key]);
  }

  const lines = [
    '# Configuration',
    '',
    '<!-- Generated by `npm run schema` from src/config/schema.ts; edit the schema, not this file. -->',
    '',
    'Outpost reads `outpost.yaml` from its working directory if present, or the file named by',
    '`--config` or `$OUTPOST_CONFIG` (which must then exist). Every key can also be set with an',
    'environment variable; the environment overrides the file, and the file overrides the defaults.',
    '',
    '- Numbers and strings are written as is (`OUTPOST_HTTP_PORT=9000`).',
    '- Booleans accept `true`/`false`, `1`/`0`, `yes`/`no` and `on`/`off`.',
    '- Keys marked (JSON) take a JSON value (`OUTPOST_INGEST_ROUTES=\'[{"name":"a","filter":"s/+/+","kind":"sensor"}]\'`).',
    '- Keys marked (secret) are masked by `outpost start --print-config` and never shown in errors.',
    '- An unknown key in the file or an unknown `OUTPOST_*` variable is an error, so typos do not pass silently.',
    '',
    'Times are in seconds unless a key says otherwise. `outpost start --print-config` prints the',
    'effective configuration and exits.',
    '',
    `Editors with the YAML language server validate and complete the file with [the JSON Schema](../${SCHEMA_PATH}):`,
    '',
    '```yaml',
    `# yaml-language-server: $schema=./${SCHEMA_PATH}`,
    '```',
  ];

  for (const [section, keys] of sections) {
    lines.push('', `## ${section === '' ? 'General' : code(section)}`, '');
    lines.push('| Key | Environment variable | Type | Default | Description |');
    lines.push('| --- | --- | --- | --- | --- |');
    const after: string[] = [];
    for (const key of keys) {
      const node = nodeAt(schema, key.path);
      lines.push(keyRow(key, node));
      after.push(...itemTable(key, node));
      if (isBig(node.default)) {
        after.push(
          '',
          `Default of ${code(key.path.join('.'))}:`,
          '',
          '```yaml',
          stringifyYaml(node.default).trimEnd(),
          '```',
        );
      }
    }
    lines.push(...after);
  }
  return `${lines.join('\n')}\n`;
}

/** Every generated file: path relative to the project root, and its content. */
export function generatedFiles(): { path: string; content: string }[] {
  return [
    { path: SCHEMA_PATH, content: renderJsonSchema() },
    { path: DOCS_PATH, content: renderDocs() },
  ];
}

/** The generated files under `root` that are missing or differ from what the schema gives. */
export function staleFiles(root: string): string[] {
  return generatedFiles()
    .filter(({ path, content }) => {
      const file = join(root, path);
      return !existsSync(file) || readFileSync(file, 'utf8') !== content;
    })
    .map(({ path }) => path);
}

function main(argv: readonly string[]): number {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  if (argv.includes('--check')) {
    const stale = staleFiles(root);
    for (const path of stale) process.stderr.write(`${path} is out of date; run npm run schema\n`);
    return stale.length > 0 ? 1 : 0;
  }
  for (const { path, content } of generatedFiles()) {
    const file = join(root, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
    process.stdout.write(`wrote ${path}\n`);
  }
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
