import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const MOSQUITTO = '/usr/sbin/mosquitto';

/** A free loopback port (bound, read and released: a tiny race that tests accept). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface MosquittoOptions {
  /** Extra settings of the listener (TLS files, password_file...); the URL is then mqtts://. */
  listener?: string[];
}

export interface Mosquitto {
  url: string;
  port: number;
  process: ChildProcess;
  /** Kills it (SIGKILL with `hard`). */
  stop(hard?: boolean): Promise<void>;
  /** Starts it again on the same port and persistence folder. */
  restart(): Promise<void>;
}

/**
 * A real mosquitto process on a free loopback port, with the field settings Outpost ships
 * (deploy/mosquitto/outpost.conf: raised queue and in-flight limits) and persistence in a temp folder.
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'outpost-mosquitto-'));
  const shipped = readFileSync(new URL('../../deploy/mosquitto/outpost.conf', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => !/^\s*(listener|persistence|autosave_interval)\b/.test(line))
    .join('\n');
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    // As root, mosquitto would drop to the `mosquitto` user, who cannot read the test's temp folders.
    `${shipped}\n${process.getuid?.() === 0 ? 'user root\n' : ''}listener ${port} 127.0.0.1\n${options.listener?.join('\n') ?? ''}\n` +
      `persistence true\npersistence_location ${dir}/\nautosave_interval 1\n`,
  );
  const state: { process: ChildProcess } = { process: await launch(conf, port) };
  return {
    url: `${options.listener ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    port,
    get process() {
      return state.process;
    },
    async stop(hard = false) {
      const child = state.process;
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(hard ? 'SIGKILL' : 'SIGTERM');
      await exited;
    },
    async restart() {
      state.process = await launch(conf, port);
    },
  };
}

async function launch(conf: string, port: number): Promise<ChildProcess> {
  const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`);
    if (await canConnect(port)) return child;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`mosquitto did not listen on ${port}: ${stderr}`);
}

async function canConnect(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
