/** A JSON schema as the config and the runtimes carry it. */
type JsonSchema = Readonly<Record<string, unknown>>;

const SCHEMA_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);
/** keywords whose value is a map of names to schemas */
const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'];
/** keywords whose value is a schema or a list of schemas */
const SCHEMA_SLOTS = ['items', 'prefixItems', 'additionalProperties', 'anyOf', 'oneOf', 'allOf', 'not'];

/**
 * Why llama.cpp's JSON-schema converter would fail on `schema`, or undefined. In llama.node 1.7.15 its
 * failure is a C++ exception nobody catches (the worker aborts), and minLength > maxLength never returns
 * (seen), so the mistakes a hand-written task schema makes are caught here: by the config loader for route
 * schemas, and by the llama.node runtime before each generation.
 */
export function grammarSchemaProblem(root: JsonSchema): string | undefined {
  const visit = (node: unknown, at: string): string | undefined => {
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined;
    const schema = node as Record<string, unknown>;
    for (const type of [schema.type ?? []].flat()) {
      if (!SCHEMA_TYPES.has(String(type))) return `unknown type ${JSON.stringify(type)} at ${at}`;
    }
    if (typeof schema.pattern === 'string') {
      const { pattern } = schema;
      if (!pattern.startsWith('^') || !pattern.endsWith('$')) {
        return `pattern at ${at} must start with ^ and end with $`;
      }
      try {
        new RegExp(pattern);
      } catch {
        return `pattern at ${at} is not a regular expression`;
      }
    }
    if (Number(schema.minLength ?? 0) > Number(schema.maxLength ?? Number.POSITIVE_INFINITY)) {
      return `minLength is above maxLength at ${at}`;
    }
    if (typeof schema.$ref === 'string' && resolveRef(root, schema.$ref) === undefined) {
      return `$ref ${schema.$ref} at ${at} does not point inside the schema`;
    }
    const children: [string, unknown][] = [];
    for (const key of SCHEMA_MAPS) {
      for (const [name, child] of Object.entries(asObject(schema[key]))) {
        children.push([`${key}/${name}`, child]);
      }
    }
    for (const key of SCHEMA_SLOTS) {
      const slot = schema[key];
      if (Array.isArray(slot)) {
        children.push(...slot.map((child, i): [string, unknown] => [`${key}/${i}`, child]));
      } else {
        children.push([key, slot]);
      }
    }
    for (const [path, child] of children) {
      const problem = visit(child, `${at}/${path}`);
      if (problem) return problem;
    }
    return undefined;
  };
  return visit(root, '#');
}

/** The node a local `$ref` (#/$defs/x) names in `root`, or undefined. */
function resolveRef(root: JsonSchema, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  let node: unknown = root;
  for (const part of ref.slice(1).split('/').filter(Boolean)) {
    node = asObject(node)[part.replaceAll('~1', '/').replaceAll('~0', '~')];
    if (node === undefined) return undefined;
  }
  return node;
}

function asObject(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}
