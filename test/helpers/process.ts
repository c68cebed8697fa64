import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** tsx's loader by URL: `--import tsx` would resolve from the child's working folder. */
const tsx = new URL('../../node_modules/tsx/dist/loader.mjs', import.meta.url).href;

export interface GatewayProcess {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/** `outpost start` as a real child process (TypeScript through tsx), with OUTPOST_* settings in `env`. */
export function spawnGateway(env: Record<string, string>, cwd: string): GatewayProcess {
  const child = spawn(process.execPath, ['--import', tsx, `${root}/src/cli/main.ts`, 'start'], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, OUTPOST_LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return { child, output: () => output, exited };
}
