import { type JsonSchema, MEDIA_MARKER } from './runtime.js';

/** What a job asks of the model: a prompt template and the JSON schema that constrains the answer. */
export interface TaskDefinition {
  /** results/<resultKind>/<source> */
  resultKind: string;
  /** `{{input}}` is replaced by the job data as JSON */
  prompt: string;
  schema: JsonSchema;
  /** the media kind the job passes to the model; only a model with that capability runs it */
  media?: 'image' | 'audio' | undefined;
}

export type TaskName = 'explain' | 'digest' | 'frame' | 'audio' | 'ask';

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
  frame: {
    resultKind: 'frame',
    media: 'image',
    prompt:
      'You watch a fixed camera of a field installation. Describe what the image shows in one sentence, ' +
      'list the kinds of objects you see with their counts, count the people, and raise an alert only ' +
      'for something an operator must look at now (intrusion, fire, smoke, a fall, damage, an animal in ' +
      'a fenced area), with the reason (empty when there is no alert). Give your confidence in percent. ' +
      'Answer in JSON.\n\n{{input}}',
    schema: {
      type: 'object',
      properties: {
        description: text(240),
        objects: {
          type: 'array',
          maxItems: 8,
          items: {
            type: 'object',
            properties: { label: text(40), count: { type: 'integer', minimum: 0, maximum: 999 } },
          },
        },
        people: { type: 'integer', minimum: 0, maximum: 999 },
        alert: { type: 'boolean' },
        alertReason: text(120),
        // An integer percentage: llama.cpp grammars bound integers, not decimals.
        confidence: { type: 'integer', minimum: 0, maximum: 100 },
      },
    },
  },
  audio: audioTask(),
  ask: {
    resultKind: 'ask',
    prompt:
      "You are a field gateway's assistant. Answer the operator's question in at most three sentences " +
      'from the findings below only, and name the ids of the findings you used. If they do not answer it, ' +
      'say that the gateway has no finding about it and use none. Answer in JSON.\n\n{{input}}',
    // The ids are constrained per question to the findings it was given (see askSchema).
    schema: askSchema([]),
  },
};

/** The ask task's schema: the answer, and ids drawn only from the findings offered. */
export function askSchema(ids: readonly string[]): JsonSchema {
  return {
    type: 'object',
    properties: {
      answer: text(400),
      results:
        ids.length > 0
          ? { type: 'array', maxItems: Math.min(5, ids.length), items: { enum: [...ids] } }
          : { type: 'array', maxItems: 0, items: { type: 'string' } },
    },
  };
}

/**
 * The audio task; with a target `language`, it also asks for a translation into it (the schema then
 * carries `translation`). The model must hear: a projector with an audio encoder (Gemma 4 E2B/E4B GGUFs
 * have one; Gemma 3n audio is not in llama.cpp yet).
 */
export function audioTask(language?: string): TaskDefinition {
  const translate = language ? ` Translate the speech into ${language} (the language code).` : '';
  return {
    resultKind: 'audio',
    media: 'audio',
    prompt:
      'You listen to a microphone of a field installation. Transcribe any speech word for word (empty ' +
      'when there is none) and give its language as an ISO 639-1 code (empty without speech).' +
      translate +
      ' List the other sounds you hear (machine hum, engine, alarm, vehicle, animal, rain...). Raise an ' +
      'alert only for something an operator must act on now (a call for help, an alarm, a crash, ' +
      'breaking glass, a shot), with the reason (empty when there is no alert). Answer in JSON.\n\n{{input}}',
    schema: {
      type: 'object',
      properties: {
        transcript: text(600),
        language: text(8),
        ...(language ? { translation: text(600) } : {}),
        sounds: { type: 'array', items: text(40), maxItems: 8 },
        alert: { type: 'boolean' },
        alertReason: text(120),
      },
    },
  };
}

/**
 * Gemma's chat turns around the task prompt with its input filled in; a task that carries media gets its
 * marker first, where the model sees the image (or clip) before the question.
 */
export function renderPrompt(task: TaskDefinition, input: unknown): string {
  const body = task.prompt.replace('{{input}}', JSON.stringify(input, null, 1));
  const media = task.media ? `${MEDIA_MARKER}\n` : '';
  return `<start_of_turn>user\n${media}${body}<end_of_turn>\n<start_of_turn>model\n`;
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
