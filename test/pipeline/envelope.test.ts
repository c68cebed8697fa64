import { describe, expect, it } from 'vitest';
import { decodeAudioPayload } from '../../src/pipeline/audio/payload.js';
import { parseMediaEnvelope } from '../../src/pipeline/envelope.js';
import { decodeFramePayload } from '../../src/pipeline/frame/decode.js';

const MEDIA = Buffer.from('not really media').toString('base64');

/** `before` + bytes + `after` as one payload: JSON text with raw bytes spliced in. */
const splice = (before: string, bytes: number[], after: string) =>
  Buffer.concat([Buffer.from(before), Buffer.from(bytes), Buffer.from(after)]);

describe('parseMediaEnvelope: UTF-8', () => {
  // Found by the malformed-payload fault test (test/daemon/malformed.test.ts): the envelope used to decode
  // leniently, so bad bytes in a prompt or a key became U+FFFD and the frame or clip was accepted.
  it.each([
    ['in the prompt', splice(`{"image":"${MEDIA}","prompt":"gate `, [0xff], '"}')],
    ['in a key', splice('{"', [0xc0, 0xaf], `ts":1,"image":"${MEDIA}"}`)],
    ['in the base64', splice(`{"image":"${MEDIA.slice(0, 8)}`, [0xed, 0xa0, 0x80], `${MEDIA.slice(8)}"}`)],
    ['a cut multi-byte sequence', splice(`{"image":"${MEDIA}","prompt":"`, [0xe2, 0x82], '"}')],
  ])('refuses invalid UTF-8 %s as bad-json', (_, payload) => {
    expect(parseMediaEnvelope(payload, 'image', 1024)).toEqual({
      code: 'bad-json',
      reason: 'JSON payload is not valid UTF-8',
    });
  });

  it('keeps a prompt in valid non-ASCII UTF-8 as sent', () => {
    const prompt = 'Wer steht am Tor? – ü, 門, 🚪';
    const envelope = parseMediaEnvelope(Buffer.from(JSON.stringify({ image: MEDIA, prompt })), 'image', 1024);
    expect(envelope).toMatchObject({ prompt });
  });

  it('both media routes reject it', async () => {
    const frame = await decodeFramePayload(splice('{"image":"', [0xff], '"}'), {
      maxBytes: 1024,
      maxPixels: 1e6,
    });
    expect(frame).toMatchObject({ ok: false, code: 'bad-json' });
    const clip = decodeAudioPayload(splice(`{"audio":"${MEDIA}","prompt":"`, [0x80], '"}'), undefined, {
      maxBytes: 1024,
      maxSeconds: 30,
      maxChannels: 2,
    });
    expect(clip).toMatchObject({ ok: false, code: 'bad-json' });
  });
});
