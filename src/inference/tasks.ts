import type { JsonSchema } from './runtime.js';

/** What a job asks of the model: a prompt template and the JSON schema that constrains the answer. */
export interface TaskDefinition {
  /** results/<resultKind>/<source> */
  resultKind: string;
  /** `{{input}}` is replaced by the job data as JSON */
  prompt: string;
  schema: JsonSchema;
}

export type TaskName = 'explain' | 'digest';

/**
 * Strings are bounded: a Pi decodes 6-8 tokens/s, so an answer must stay short, and the bound keeps a
 * grammar-constrained answer inside model.maxTokens.
 */
const text = (maxLength: number) => ({ type: 'string', maxLength }) as const;

/** The built-in tasks; a route may replace the prompt and/or schema of each (`ingest.routes[].tasks`). */
export const DEFAULT_TASKS: Readonly<Record<TaskName, TaskDefinition>> = {
  explain: {
    resultKind: 'anomaly',
    prompt:
      'You watch the sensors of a field installation. A reading left its normal range. From the data ' +
      'below, say in one sentence what happened, the most likely cause, how severe it is ' +
      '(info, warning or critical) and what an operator should do. Answer in JSON.\n\n{{input}}',
    schema: {
      type: 'object',
      properties: {
        summary: text(160),
        likelyCause: text(120),
        severity: { enum: ['info', 'warning', 'critical'] },
        action: text(120),
      },
    },
  },
  digest: {
    resultKind: 'digest',
    prompt:
      'You watch the sensors of a field installation. Summarise the period below for an operator: ' +
      'overall state (normal, attention or fault), one or two sentences, and up to three notable points. ' +
      'Answer in JSON.\n\n{{input}}',
    schema: {
      type: 'object',
      properties: {
        summary: text(240),
        status: { enum: ['normal', 'attention', 'fault'] },
        highlights: { type: 'array', items: text(100), maxItems: 3 },
      },
    },
  },
};

/** Gemma's chat turns around the task prompt with its input filled in. */
export function renderPrompt(task: TaskDefinition, input: unknown): string {
  const body = task.prompt.replace('{{input}}', JSON.stringify(input, null, 1));
  return `<start_of_turn>user\n${body}<end_of_turn>\n<start_of_turn>model\n`;
}

/**
 * The schema used to validate an answer: the grammar schema with every property required and nothing
 * else allowed, which is what llama.cpp's JSON grammar generates.
 */
export function validationSchema(schema: JsonSchema): JsonSchema {
  const walk = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    const copy: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) copy[key] = walk(value);
    if (copy.type === 'object' && copy.properties && typeof copy.properties === 'object') {
      copy.required ??= Object.keys(copy.properties);
      copy.additionalProperties ??= false;
    }
    return copy;
  };
  return walk(schema) as JsonSchema;
}
