import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiHarness, startApi } from './harness.js';

interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: { type?: string; minimum?: number; pattern?: string };
}
interface Operation {
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Record<string, unknown> }> };
  responses: Record<string, { description: string; content?: Record<string, unknown> }>;
}
interface Document {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, Operation>>;
}

/** The HTTP contract of DESIGN.md, plus the document itself. */
const CONTRACT = [
  'GET /',
  'GET /{file}',
  'POST /api/ask',
  'GET /api/events',
  'GET /api/openapi.json',
  'GET /api/readings',
  'GET /api/results',
  'GET /api/results/{id}',
  'GET /api/results/{id}/media',
  'GET /api/status',
  'GET /api/stream',
  'GET /healthz',
  'GET /metrics',
  'GET /readyz',
];

/** A value the parameter's schema accepts. */
function sample(p: Parameter): string {
  if (p.schema.pattern) return 'app.js';
  if (p.schema.type === 'integer') return String(p.schema.minimum ?? 1);
  if (p.name === 'series') return 'boiler/temp';
  if (p.name === 'last-event-id') return 'r0.e0';
  if (p.name === 'range') return 'bytes=0-1';
  if (p.name === 'bucket') return '60s';
  if (['since', 'until', 'from', 'to'].includes(p.name)) return '1';
  return 'x';
}

describe('GET /api/openapi.json', () => {
  let api: ApiHarness;
  let doc: Document;

  beforeAll(async () => {
    api = await startApi({ token: 'doc-token-0123456789abcdef', metrics: () => '' });
    api.addResult({ id: 'x', media: api.addMedia('frames/yard/x.jpg', Buffer.from([0xff, 0xd8])) });
    doc = await api.json<Document>('/api/openapi.json');
  });
  afterAll(async () => {
    await api.close();
  });

  const operations = () =>
    Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
    );

  /** Calls an operation with its path parameters filled in, reading only the status. */
  async function call(method: string, path: string, query = '', headers: Record<string, string> = {}) {
    const controller = new AbortController();
    const url = `${path.replace('{id}', 'x').replace('{file}', 'app.js')}${query}`;
    const response = await api.get(url, {
      method,
      headers: { ...headers, ...(method === 'POST' ? { 'content-type': 'application/json' } : {}) },
      body: method === 'POST' ? JSON.stringify({ question: 'q' }) : undefined,
      signal: controller.signal,
    });
    const text = path === '/api/stream' && response.ok ? '' : await response.text();
    controller.abort();
    return { status: response.status, text };
  }

  it('is OpenAPI 3.1 with exactly the registered routes', async () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({
      title: 'Outpost LAN API',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/),
    });
    const documented = operations()
      .map((o) => `${o.method} ${o.path}`)
      .sort();
    expect(documented).toEqual([...CONTRACT].sort());
    // Each documented operation is served; each other method on its path is not a route.
    for (const { method, path } of operations()) {
      const { status, text } = await call(method, path);
      expect(text, `${method} ${path}`).not.toMatch(/no route/);
      expect(status, `${method} ${path}`).toBeLessThan(method === 'POST' ? 504 : 400);
      const other = method === 'GET' ? 'DELETE' : 'GET';
      if (!doc.paths[path]![other.toLowerCase()]) {
        const missing = await call(other, path);
        expect(missing.status, `${other} ${path}`).toBe(404);
        expect(missing.text, `${other} ${path}`).toMatch(/no route/);
      }
    }
  });

  it("documents each route's parameters as its validation takes them", async () => {
    for (const { method, path, op } of operations()) {
      const params = op.parameters ?? [];
      const query = params.filter((p) => p.in === 'query');
      for (const p of query) {
        // A documented parameter is known to the route (whatever it thinks of the value).
        const { text } = await call(method, path, `?${p.name}=${encodeURIComponent(sample(p))}`);
        expect(text, `${method} ${path} ${p.name}`).not.toMatch(/additional properties|unknown/);
      }
      if (query.length > 0) {
        // And an undocumented one is refused.
        const { status, text } = await call(method, path, '?undocumented=1');
        expect(status, `${method} ${path}`).toBe(400);
        expect(text, `${method} ${path}`).toMatch(/additional properties/);
      }
      for (const p of params.filter((x) => x.in === 'path')) {
        expect(path, p.name).toContain(`{${p.name}}`);
        expect(p.required).toBe(true);
      }
      expect([...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1])).toEqual(
        params.filter((p) => p.in === 'path').map((p) => p.name),
      );
    }
  });

  it('documents the results filters, the ask body and non-JSON responses', () => {
    const results = doc.paths['/api/results']!.get!;
    expect(results.parameters!.map((p) => p.name).sort()).toEqual(
      ['cursor', 'kind', 'label', 'limit', 'q', 'since', 'source', 'until'].sort(),
    );
    expect(results.parameters!.find((p) => p.name === 'limit')!.schema).toMatchObject({
      type: 'integer',
      minimum: 1,
      maximum: 500,
      default: 50,
    });
    expect(results.responses['200']!.content).toHaveProperty('application/json');
    expect(results.responses['401']).toBeDefined();
    const ask = doc.paths['/api/ask']!.post!;
    expect(ask.requestBody!.content['application/json']!.schema).toMatchObject({
      required: ['question'],
      properties: { question: { type: 'string', minLength: 1, maxLength: 500 } },
    });
    expect(doc.paths['/api/stream']!.get!.responses['200']!.content).toHaveProperty('text/event-stream');
    expect(doc.paths['/metrics']!.get!.responses['200']!.content).toHaveProperty('text/plain; version=0.0.4');
    expect(doc.paths['/api/results/{id}/media']!.get!.responses['416']).toBeDefined();
  });
});
