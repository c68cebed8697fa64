/**
 * `outpost doctor`'s microphone check: the recorder is installed, the configured ALSA device is among the
 * capture devices `arecord -l` lists, and 0.3 s of audio can be recorded from it.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CheckResult, DoctorCheck } from './doctor.js';
import { firstLine, runCommand } from './doctorChecks.js';

/** One capture device of `arecord -l`. */
export interface CaptureDevice {
  /** card index */
  card: number;
  /** card id, e.g. `Device` (usable as `hw:CARD=Device`) */
  id: string;
  /** card name, e.g. `USB Audio Device` */
  name: string;
  device: number;
}

/** The capture devices of `arecord -l` output (`card 1: Device [USB Audio Device], device 0: USB Audio [USB Audio]`). */
export function parseCaptureDevices(text: string): CaptureDevice[] {
  const devices: CaptureDevice[] = [];
  for (const match of text.matchAll(/^card (\d+): (\S+) \[([^\]]*)\], device (\d+):/gm)) {
    devices.push({ card: Number(match[1]), id: match[2]!, name: match[3]!, device: Number(match[4]) });
  }
  return devices;
}

/** The card (index or id) and device of `hw:1,0`, `plughw:CARD=Device,DEV=0`; undefined for other PCM names. */
export function parseHwDevice(name: string): { card: string; device: number } | undefined {
  const match = /^(?:plug)?hw:(?:CARD=)?([^,]+)(?:,(?:DEV=)?(\d+))?$/.exec(name.trim());
  return match ? { card: match[1]!, device: Number(match[2] ?? 0) } : undefined;
}

const SAMPLE_RATE = 16_000;
const SAMPLES = 4800; // 0.3 s
const DEVICE_KEY = 'audio.microphone.device (OUTPOST_AUDIO_MICROPHONE_DEVICE)';

export const microphoneCheck: DoctorCheck = {
  id: 'microphone',
  timeoutMs: 8000,
  timeoutFix: 'the recorder does not answer: try `arecord -l` and `arecord -d 1 /tmp/probe.wav` by hand',
  async run({ config, signal, cwd }): Promise<CheckResult> {
    const mic = config.audio.microphone;
    if (!mic.enabled) return { status: 'ok', message: 'not enabled (audio.microphone.enabled is false)' };
    if (mic.recorder === 'sox' || mic.recorder === 'rec') {
      const r = await runCommand('sox', ['--version'], { timeoutMs: 3000, signal });
      return r.code === 0
        ? {
            status: 'ok',
            message: `${mic.recorder} is installed; the device is only recorded from with arecord`,
          }
        : {
            status: 'fail',
            message: `${mic.recorder} is not installed`,
            fix: 'install it (`apt-get install sox`) or set audio.microphone.recorder to arecord',
          };
    }
    if (mic.recorder !== 'arecord') {
      const path = resolve(cwd, mic.recorder);
      return existsSync(path)
        ? { status: 'ok', message: `recorder module ${path} is there; the device is not recorded from` }
        : {
            status: 'fail',
            message: `recorder module ${path} is not there`,
            fix: 'set audio.microphone.recorder to arecord, sox, or the path of a recorder module that exists',
          };
    }

    const list = await runCommand('arecord', ['-l'], { timeoutMs: 3000, signal });
    if (list.startError === 'ENOENT') {
      return {
        status: 'fail',
        message: 'arecord is not installed',
        fix: 'install alsa-utils (`apt-get install alsa-utils`)',
      };
    }
    const devices = parseCaptureDevices(list.stdout.toString());
    const named = devices.map((d) => `plughw:${d.card},${d.device} (${d.name})`);
    const chooseFix =
      devices.length > 0
        ? `set ${DEVICE_KEY} to one \`arecord -l\` lists: ${named.join(', ')}`
        : `plug in a microphone (a USB one shows up as a capture card), check that \`arecord -l\` lists it, then set ${DEVICE_KEY} to it, e.g. plughw:1,0`;
    const device = mic.device;
    const label = device ?? 'the default capture device';
    const details = { device: device ?? null, captureDevices: devices };
    if (devices.length === 0) {
      return {
        status: 'fail',
        message: `no capture device: \`arecord -l\` lists none (${device ? `${device} wanted` : 'not even a default'})`,
        fix: chooseFix,
        details,
      };
    }
    const hw = device === undefined ? undefined : parseHwDevice(device);
    if (
      hw &&
      !devices.some((d) => (String(d.card) === hw.card || d.id === hw.card) && d.device === hw.device)
    ) {
      return {
        status: 'fail',
        message: `${device} is not a capture device here (\`arecord -l\` lists ${named.join(', ')})`,
        fix: chooseFix,
        details,
      };
    }

    const args = [
      '-q',
      '-f',
      'S16_LE',
      '-r',
      String(SAMPLE_RATE),
      '-c',
      '1',
      '-t',
      'raw',
      '-s',
      String(SAMPLES),
    ];
    const rec = await runCommand('arecord', device ? ['-D', device, ...args] : args, {
      timeoutMs: 4000,
      signal,
    });
    if (rec.code !== 0) {
      const why = lastLine(rec.stderr) || `arecord exited with ${rec.code ?? 'a signal'}`;
      const busy = /busy/i.test(why);
      return {
        status: 'fail',
        message: `recording from ${label} failed: ${why}`,
        fix: busy
          ? 'another program holds the microphone (a running outpost? `fuser -v /dev/snd/*` names it): stop it, or capture through a dsnoop PCM that shares the device'
          : chooseFix,
        details,
      };
    }
    return judgeRecording(rec.stdout, label, details);
  },
};

/** ok when 0.3 s arrived and is not digital silence. */
function judgeRecording(pcm: Buffer, label: string, details: Record<string, unknown>): CheckResult {
  const samples = Math.floor(pcm.length / 2);
  let peak = 0;
  for (let i = 0; i < samples; i++) peak = Math.max(peak, Math.abs(pcm.readInt16LE(i * 2)));
  const ms = Math.round((samples / SAMPLE_RATE) * 1000);
  const dbfs = peak === 0 ? -Infinity : Math.round(20 * Math.log10(peak / 32768));
  const all = { ...details, recordedMs: ms, peakDbfs: Number.isFinite(dbfs) ? dbfs : null };
  if (samples < SAMPLES / 2) {
    return {
      status: 'warn',
      message: `${label} delivered only ${ms} ms of the 300 ms asked for`,
      fix: `try the plughw: form of the device in ${DEVICE_KEY} (it converts rate and format)`,
      details: all,
    };
  }
  if (peak === 0) {
    return {
      status: 'warn',
      message: `${label} recorded ${ms} ms of digital silence (muted?)`,
      fix: 'unmute the capture control and raise its level (`alsamixer`, F4 for capture)',
      details: all,
    };
  }
  return { status: 'ok', message: `${label}: recorded ${ms} ms, peak ${dbfs} dBFS`, details: all };
}

function lastLine(text: string): string {
  return firstLine(
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .at(-1) ?? '',
  );
}
