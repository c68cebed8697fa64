/**
 * The JSON form of a frame or clip: `{"<field>": base64, "ts"?, "prompt"?, ...}`. Parsed and checked here
 * once for both media routes; each decoder then reads its own fields from `doc`.
 */

/** Why an envelope was refused; the codes are shared by the frame and audio reject codes. */
export interface EnvelopeProblem {
  code: 'too-large' | 'bad-json' | 'bad-field' | 'empty' | 'bad-base64' | 'bad-timestamp';
  reason: string;
}

export interface MediaEnvelope {
  /** the whole JSON object, for the decoder's own fields */
  doc: Record<string, unknown>;
  /** the base64-decoded media */
  bytes: Buffer;
  /** `ts`: epoch ms */
  ts?: number;
  /** `prompt`, when it is not blank */
  prompt?: string;
}

/** Longest accepted `prompt`, chars. */
const MAX_PROMPT_LENGTH = 2000;
/** ISO strings longer than this are not timestamps. */
const MAX_TS_STRING_LENGTH = 64;
/** Requires a full calendar date, so Date.parse's loose forms ("May 1", "2024") are refused. */
const ISO_DATE_PREFIX = /^[+-]?\d{4,6}-\d{2}-\d{2}/;
/** Fields other than the media may add this much to a JSON payload beyond the base64, bytes. */
const JSON_OVERHEAD_BYTES = 8192;
const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;
/** A `data:` URL prefix before the base64 is accepted (browsers and some cameras send one). */
const DATA_URL_PREFIX = /^data:[a-z0-9./+-]*(;[a-z0-9=.-]+)*;base64,/i;

// fatal: JSON text is UTF-8 (RFC 8259); a lenient decode would turn bad bytes into U+FFFD and let them into
// a prompt or an unknown key unnoticed, where the sensor route rejects the same payload.
const utf8 = new TextDecoder('utf-8', { fatal: true });

const problem = (code: EnvelopeProblem['code'], reason: string): EnvelopeProblem => ({ code, reason });

/**
 * Parses a JSON media payload whose media (at most `maxBytes` once decoded) is base64 in `field`. Checks
 * the size before parsing, the object shape, the base64, `ts` (ISO 8601 or epoch ms) and `prompt`.
 */
export function parseMediaEnvelope(
  payload: Uint8Array,
  field: string,
  maxBytes: number,
): MediaEnvelope | EnvelopeProblem {
  const maxJson = Math.ceil((maxBytes * 4) / 3) + JSON_OVERHEAD_BYTES;
  if (payload.length > maxJson) {
    return problem('too-large', `JSON payload is ${payload.length} bytes, over the ${maxJson} byte limit`);
  }
  let json: string;
  try {
    json = utf8.decode(payload);
  } catch {
    return problem('bad-json', 'JSON payload is not valid UTF-8');
  }
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    return problem('bad-json', 'payload starts like JSON but does not parse');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    return problem('bad-json', `JSON payload must be an object with an "${field}" field`);
  }
  const obj = doc as Record<string, unknown>;
  const media = obj[field];
  if (typeof media !== 'string') return problem('bad-field', `JSON "${field}" must be a base64 string`);
  const text = media.replace(DATA_URL_PREFIX, '').replace(/\s+/g, '');
  if (text.length === 0) return problem('empty', `JSON "${field}" is empty`);
  if (text.length % 4 === 1 || !BASE64_BODY.test(text)) {
    return problem('bad-base64', `JSON "${field}" is not valid base64`);
  }
  const envelope: MediaEnvelope = { doc: obj, bytes: Buffer.from(text, 'base64') };
  if (obj.ts !== undefined && obj.ts !== null) {
    const ts = parseTimestamp(obj.ts);
    if (ts === undefined) return problem('bad-timestamp', 'ts must be an ISO 8601 string or epoch ms');
    envelope.ts = ts;
  }
  if (obj.prompt !== undefined && obj.prompt !== null) {
    const prompt = obj.prompt;
    if (typeof prompt !== 'string' || prompt.length > MAX_PROMPT_LENGTH) {
      return problem('bad-field', `JSON "prompt" must be a string of at most ${MAX_PROMPT_LENGTH} chars`);
    }
    if (prompt.trim().length > 0) envelope.prompt = prompt;
  }
  return envelope;
}

/** Epoch ms from a non-negative number or an ISO 8601 string with a full date; undefined otherwise. */
function parseTimestamp(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  if (typeof value === 'string' && value.length <= MAX_TS_STRING_LENGTH && ISO_DATE_PREFIX.test(value)) {
    const ms = Date.parse(value);
    if (Number.isFinite(ms)) return ms;
  }
  return undefined;
}
