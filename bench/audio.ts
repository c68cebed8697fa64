/**
 * npm run bench:audio [-- --clips 60 --seconds 60]
 *
 * What an hour of microphone audio costs the gateway, side by side with sox on the same audio in the same
 * run. The audio is 60 clips of 60 s at 48 kHz, stereo, 16-bit (a common USB microphone format): espeak-ng
 * phrases at random places (about a third of the time), mains hum with harmonics, a fan in some clips,
 * low noise, and stretches of digital silence. Clips are generated one at a time so memory stays bounded.
 *
 * - Outpost: decode the WAV bytes -> downmix -> resample to 16 kHz -> voice activity -> segments, in
 *   process, per clip, as the audio thread does (from memory: the payload arrives over MQTT).
 * - sox: `sox in.wav -r 16000 -c 1 out.wav` on the same clip written to a temporary file (decode, remix,
 *   resample, encode; no VAD), timed per clip including process start and file I/O. Its default rate
 *   effect is "high" quality (95% bandwidth, a longer filter than Outpost's 85%, 70 dB), so the times
 *   compare the same job, not the same filter.
 * Prints the real-time factor of each (goal for Outpost: <= 0.01, an hour in 36 s), the time per stage,
 * the ratio to sox and the peak RSS of this process (and of sox, via /usr/bin/time when present).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gaussian, mulberry32 } from '../src/common/index.js';
import {
  decodeAudioPayload,
  detectVoice,
  downmix,
  resample,
  segmentClip,
} from '../src/pipeline/audio/index.js';

const { values } = parseArgs({
  options: {
    clips: { type: 'string', default: '60' },
    seconds: { type: 'string', default: '60' },
  },
});
const CLIPS = Number(values.clips);
const SECONDS = Number(values.seconds);
const RATE = 48000;
const OUT_RATE = 16000;
const LIMITS = { maxBytes: 64 * 1024 * 1024, maxSeconds: 600, maxChannels: 2 };
const PHRASES = [
  'The pump in the north shed is making a strange noise again.',
  'Please send someone to check the gate, it has been open since this morning.',
  'Temperature is rising in the cold room, the door may be ajar.',
  'All clear at the east fence, nothing to report.',
  'Can you hear me? The generator stopped a minute ago.',
  'Delivery truck at the main entrance, waiting for the barrier.',
];

const dir = mkdtempSync(join(tmpdir(), 'outpost-bench-audio-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** espeak-ng phrases, converted to 48 kHz by sox (not by the code under test). */
function phrases(): Float32Array[] {
  return PHRASES.map((text, i) => {
    const raw = join(dir, `p${i}.wav`);
    const at48 = join(dir, `p${i}-48k.wav`);
    execFileSync('espeak-ng', ['-w', raw, text]);
    execFileSync('sox', [raw, '-r', String(RATE), '-b', '32', '-e', 'floating-point', at48]);
    const decoded = decodeAudioPayload(readFileSync(at48), undefined, LIMITS);
    if (!decoded.ok) throw new Error(decoded.reason);
    return decoded.audio.channels[0]!;
  });
}

/** One clip as 16-bit stereo WAV bytes, and how many seconds of speech it holds. */
function makeClip(index: number, speech: Float32Array[]): { wav: Buffer; speechSeconds: number } {
  const random = mulberry32(1000 + index);
  const noise = gaussian(random);
  const n = SECONDS * RATE;
  const left = new Float32Array(n);
  const right = new Float32Array(n);
  const hum = index % 3 !== 2 ? 0.02 + 0.03 * random() : 0;
  const fan = index % 4 === 1 ? 0.02 : 0;
  const mainsHz = index % 2 === 0 ? 50 : 60;
  // A stretch of digital silence (a muted input) in every fifth clip.
  const muteFrom = index % 5 === 0 ? Math.floor(random() * n * 0.5) : n;
  const muteTo = muteFrom + Math.floor(n * 0.3);
  let lowpass = 0;
  for (let i = 0; i < n; i++) {
    if (i >= muteFrom && i < muteTo) continue;
    const t = i / RATE;
    const h = hum * (Math.sin(2 * Math.PI * mainsHz * t) + 0.5 * Math.sin(4 * Math.PI * mainsHz * t + 1));
    lowpass = 0.95 * lowpass + 0.05 * noise();
    const bed = h + fan * 3 * lowpass + 0.001 * noise();
    left[i] = bed;
    right[i] = 0.8 * bed + 0.001 * noise();
  }
  let speechSamples = 0;
  for (let at = Math.floor(random() * 5 * RATE); at < n; ) {
    const phrase = speech[Math.floor(random() * speech.length)]!;
    const gain = 0.3 + 0.5 * random();
    const length = Math.min(phrase.length, n - at);
    for (let i = 0; i < length; i++) {
      left[at + i] = left[at + i]! + gain * phrase[i]!;
      right[at + i] = right[at + i]! + 0.9 * gain * phrase[i]!;
    }
    speechSamples += length;
    at += length + Math.floor((1 + random() * 10) * RATE);
  }
  const wav = Buffer.alloc(44 + n * 4);
  wav.write('RIFF', 0, 'latin1');
  wav.writeUInt32LE(36 + n * 4, 4);
  wav.write('WAVEfmt ', 8, 'latin1');
  wav.writeUInt32LE(16, 16);
  wav.writeUInt16LE(1, 20);
  wav.writeUInt16LE(2, 22);
  wav.writeUInt32LE(RATE, 24);
  wav.writeUInt32LE(RATE * 4, 28);
  wav.writeUInt16LE(4, 32);
  wav.writeUInt16LE(16, 34);
  wav.write('data', 36, 'latin1');
  wav.writeUInt32LE(n * 4, 40);
  const pcm = new Int16Array(wav.buffer, wav.byteOffset + 44, n * 2);
  for (let i = 0; i < n; i++) {
    pcm[2 * i] = Math.max(-32768, Math.min(32767, Math.round(left[i]! * 32767)));
    pcm[2 * i + 1] = Math.max(-32768, Math.min(32767, Math.round(right[i]! * 32767)));
  }
  return { wav, speechSeconds: speechSamples / RATE };
}

const stages = { decode: 0, downmix: 0, resample: 0, vad: 0, segment: 0 };
let voicedSeconds = 0;
let segmentCount = 0;

/** Outpost's path over one clip; returns ms. */
function outpost(wav: Buffer): number {
  const t0 = performance.now();
  const decoded = decodeAudioPayload(wav, undefined, LIMITS);
  if (!decoded.ok) throw new Error(decoded.reason);
  const t1 = performance.now();
  const mono48 = downmix(decoded.audio.channels);
  const t2 = performance.now();
  const mono = resample(mono48, decoded.audio.sampleRate, OUT_RATE);
  const t3 = performance.now();
  const spans = detectVoice(mono);
  const t4 = performance.now();
  const { segments } = segmentClip(mono, spans);
  const t5 = performance.now();
  stages.decode += t1 - t0;
  stages.downmix += t2 - t1;
  stages.resample += t3 - t2;
  stages.vad += t4 - t3;
  stages.segment += t5 - t4;
  voicedSeconds += spans.reduce((sum, s) => sum + s.end - s.start, 0) / OUT_RATE;
  segmentCount += segments.length;
  return t5 - t0;
}

const timeBin = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;
let soxPeakKb = 0;

/** sox resampling the same clip from a file; returns ms. */
function sox(wav: Buffer): number {
  const input = join(dir, 'clip.wav');
  const output = join(dir, 'clip16k.wav');
  writeFileSync(input, wav);
  const args = [input, '-r', String(OUT_RATE), '-c', '1', output];
  const t0 = performance.now();
  const run = timeBin
    ? spawnSync(timeBin, ['-f', '%M', 'sox', ...args], { encoding: 'utf8' })
    : spawnSync('sox', args, { encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (run.status !== 0) throw new Error(`sox failed: ${run.stderr}`);
  if (timeBin) soxPeakKb = Math.max(soxPeakKb, Number(run.stderr.trim().split('\n').at(-1)) || 0);
  rmSync(input);
  rmSync(output);
  return ms;
}

const speech = phrases();
console.log(
  `${CLIPS} clips x ${SECONDS} s = ${((CLIPS * SECONDS) / 3600).toFixed(2)} h of ${RATE / 1000} kHz stereo ` +
    `16-bit audio (${((SECONDS * RATE * 4) / 1048576).toFixed(1)} MiB per clip), Node ${process.version}`,
);
// Warm-up: the first pass pays for code loading, JIT and the filter design.
outpost(makeClip(-1, speech).wav);
Object.assign(stages, { decode: 0, downmix: 0, resample: 0, vad: 0, segment: 0 });
voicedSeconds = 0;
segmentCount = 0;

let outpostMs = 0;
let soxMs = 0;
let speechSeconds = 0;
for (let c = 0; c < CLIPS; c++) {
  const clip = makeClip(c, speech);
  speechSeconds += clip.speechSeconds;
  outpostMs += outpost(clip.wav);
  soxMs += sox(clip.wav);
}

const audioSeconds = CLIPS * SECONDS;
const rtf = (ms: number) => ms / 1000 / audioSeconds;
const row = (name: string, ms: number) =>
  `${name.padEnd(58)} ${(ms / 1000).toFixed(2).padStart(7)} s   RTF ${rtf(ms).toFixed(4)}`;
console.log(row('Outpost: decode + downmix + resample + VAD + segment', outpostMs));
for (const [name, ms] of Object.entries(stages)) console.log(row(`  ${name}`, ms));
const sameWork = stages.decode + stages.downmix + stages.resample;
console.log(row('Outpost, the work sox does: decode + downmix + resample', sameWork));
console.log(row('sox in.wav -r 16000 -c 1 out.wav (per clip, files)', soxMs));
console.log(
  `Outpost / sox time: whole path ${(outpostMs / soxMs).toFixed(2)}, same work ${(sameWork / soxMs).toFixed(2)}` +
    `   (goal: Outpost RTF <= 0.01)`,
);
console.log(
  `speech placed: ${speechSeconds.toFixed(0)} s (espeak-ng phrases with their silent ends); ` +
    `voiced spans found: ${voicedSeconds.toFixed(0)} s; ` +
    `${segmentCount} segments`,
);
console.log(
  `peak RSS: Outpost process ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB (clip generation included)` +
    (timeBin ? `, sox ${(soxPeakKb / 1024).toFixed(0)} MiB` : ''),
);
