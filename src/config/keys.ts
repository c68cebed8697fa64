import type { z } from 'zod';

/** One configurable leaf of the schema, with everything derived from it. */
export interface ConfigKey {
  /** Path in the YAML file, e.g. ['mqtt', 'url']. */
  path: readonly string[];
  /** The environment variable that overrides it, e.g. OUTPOST_MQTT_URL. */
  env: string;
  /** How an environment string is turned into a value. */
  type: 'string' | 'number' | 'boolean' | 'json';
  secret: boolean;
  description: string;
}

type AnySchema = z.ZodType;

interface Def {
  type: string;
  values?: readonly unknown[];
  innerType?: AnySchema;
  shape?: Record<string, AnySchema>;
  in?: AnySchema;
}

const defOf = (schema: AnySchema): Def => (schema as unknown as { _zod: { def: Def } })._zod.def;

const wrappers = new Set(['optional', 'default', 'prefault', 'nullable', 'readonly', 'catch', 'nonoptional']);

/** Peels optional/default/... wrappers off a schema, keeping the first description and secret flag found. */
function unwrap(schema: AnySchema): { inner: AnySchema; description: string; secret: boolean; env?: string } {
  let inner = schema;
  let description = '';
  let secret = false;
  let env: string | undefined;
  for (;;) {
    const meta = inner.meta() as { secret?: boolean; env?: string } | undefined;
    description ||= inner.description ?? '';
    secret ||= meta?.secret === true;
    env ??= meta?.env;
    const def = defOf(inner);
    if (wrappers.has(def.type) && def.innerType) inner = def.innerType;
    else if (def.type === 'pipe' && def.in) inner = def.in;
    else return { inner, description, secret, env };
  }
}

/** camelCase -> CAMEL_CASE */
const envWord = (key: string) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

const leafType = (type: string): ConfigKey['type'] =>
  type === 'number' || type === 'int'
    ? 'number'
    : type === 'boolean'
      ? 'boolean'
      : type === 'string' || type === 'enum' || type === 'literal'
        ? 'string'
        : 'json';

/** Every leaf of an object schema, depth first, in declaration order. */
export function configKeys(schema: AnySchema, prefix = 'OUTPOST'): ConfigKey[] {
  const keys: ConfigKey[] = [];
  const walk = (node: AnySchema, path: string[]) => {
    const { inner, description, secret, env } = unwrap(node);
    const def = defOf(inner);
    if (def.type === 'object' && def.shape && path.length < 8) {
      for (const [name, child] of Object.entries(def.shape)) walk(child, [...path, name]);
      return;
    }
    keys.push({
      path,
      // A key may carry a shorter name of the product contract (OUTPOST_MODEL for model.name).
      env: env ?? [prefix, ...path.map(envWord)].join('_'),
      // A literal of numbers (frames.size: 256 | 512 | 768) is read from the environment as a number.
      type:
        def.type === 'literal' && def.values?.every((v) => typeof v === 'number')
          ? 'number'
          : leafType(def.type),
      secret,
      description,
    });
  };
  walk(schema, []);
  return keys;
}
