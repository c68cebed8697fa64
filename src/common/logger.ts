import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** Least severe level written. Default info. */
  level?: string;
  /** json, pretty, or auto (pretty on a TTY). Default auto. */
  format?: 'auto' | 'json' | 'pretty';
  /** Where lines go. Default standard output. */
  destination?: NodeJS.WritableStream;
}

/** JSON lines for machines and journald; readable lines on a terminal. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stdout;
  const tty = (destination as { isTTY?: boolean }).isTTY === true;
  const usePretty = options.format === 'pretty' || (options.format !== 'json' && tty);
  const base = { level: options.level ?? 'info', base: { pid: process.pid } };
  // pino-pretty as a synchronous stream, not a transport: no worker thread on a small board.
  // Synchronous writes: a crash or an OOM kill never eats the last lines that explain it.
  if (usePretty) {
    return pino(base, pretty({ destination, sync: true, colorize: tty, translateTime: 'SYS:HH:MM:ss.l' }));
  }
  return pino(base, options.destination ?? pino.destination({ dest: 1, sync: true }));
}
