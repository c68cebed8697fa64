/**
 * The OpenAPI 3.1 document of the API, generated from the routes as fastify registered them (an onRoute
 * hook records each), so the document cannot drift from the validation: the same JSON schemas check the
 * requests. Route schemas may carry, besides fastify's own keys, `summary`, `description`, `produces` (the
 * response media types when not JSON) and `errors` (status -> when it is answered), which fastify ignores.
 */

declare module 'fastify' {
  interface FastifySchema {
    summary?: string;
    description?: string;
    /** media types of the success response, when not JSON */
    produces?: readonly string[];
    /** error status -> when it is answered */
    errors?: Readonly<Record<number, string>>;
  }
}

/** A registered route as the document needs it. */
export interface RouteRecord {
  method: string;
  url: string;
  schema?: RouteSchema | undefined;
  /** needs the bearer token (when one is set) */
  auth: boolean;
  /** counts against the rate limit (when one is set) */
  rateLimited: boolean;
}

type JsonSchema = Readonly<Record<string, unknown>>;

export interface RouteSchema {
  summary?: string;
  description?: string;
  produces?: readonly string[];
  errors?: Readonly<Record<number, string>>;
  params?: JsonSchema;
  querystring?: JsonSchema;
  headers?: JsonSchema;
  body?: JsonSchema;
  response?: Readonly<Record<number, JsonSchema>>;
}

export interface OpenApiOptions {
  title: string;
  version: string;
  /** a bearer token guards the routes marked `auth` */
  bearer: boolean;
  /** requests past the rate limit are answered 429 */
  rateLimited: boolean;
}

/** Methods fastify adds on its own (HEAD for every GET) or that only serve CORS preflights. */
const UNDOCUMENTED = new Set(['HEAD', 'OPTIONS']);

const ERROR_REF = { $ref: '#/components/schemas/Error' } as const;

export function openApiDocument(routes: readonly RouteRecord[], options: OpenApiOptions) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    if (UNDOCUMENTED.has(route.method)) continue;
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    paths[path] ??= {};
    paths[path][route.method.toLowerCase()] = operation(route, options);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: options.title,
      version: options.version,
      description:
        'The LAN API of an Outpost gateway: stored findings, readings, events, a live stream, questions ' +
        'to the local model.',
    },
    paths,
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: {
          type: 'object',
          required: ['error', 'message'],
          properties: { error: { type: 'string' }, message: { type: 'string' } },
        },
      },
    },
  };
}

function operation(route: RouteRecord, options: OpenApiOptions) {
  const schema = route.schema ?? {};
  const parameters = [
    ...parametersOf(schema.params, 'path'),
    ...parametersOf(schema.querystring, 'query'),
    ...parametersOf(schema.headers, 'header'),
  ];
  const produces = schema.produces ?? ['application/json'];
  const responses: Record<string, unknown> = {};
  for (const [status, body] of Object.entries(schema.response ?? { 200: {} })) {
    const { description, ...rest } = body as { description?: string };
    responses[status] = {
      description: description ?? 'OK',
      content: Object.fromEntries(produces.map((type) => [type, { schema: rest }])),
    };
  }
  const errors: Record<number, string> = { ...schema.errors };
  if (parameters.length > 0 || schema.body) errors[400] ??= 'a parameter is invalid';
  if (route.auth && options.bearer) errors[401] = 'no valid bearer token';
  if (route.rateLimited && options.rateLimited) errors[429] = 'too many requests; see Retry-After';
  for (const [status, description] of Object.entries(errors)) {
    responses[status] = { description, content: { 'application/json': { schema: ERROR_REF } } };
  }
  return {
    ...(schema.summary ? { summary: schema.summary } : {}),
    ...(schema.description ? { description: schema.description } : {}),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(schema.body
      ? { requestBody: { required: true, content: { 'application/json': { schema: schema.body } } } }
      : {}),
    responses,
    security: route.auth && options.bearer ? [{ bearer: [] }] : [],
  };
}

function parametersOf(schema: JsonSchema | undefined, where: 'path' | 'query' | 'header') {
  const properties = (schema?.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema?.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property as { description?: string };
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(description ? { description } : {}),
      schema: rest,
    };
  });
}
