import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import type { Logger } from '../common/index.js';

/** Sends one datagram to a unix socket path; rejects when it cannot. */
type Send = (path: string, message: string) => Promise<void>;

/**
 * The datagram sender: unix-dgram (a small native module, built at install like better-sqlite3; an optional
 * dependency) sends from this process, which `NotifyAccess=main` requires. Without it, the `systemd-notify`
 * tool is the fallback; it sends from its own process, so the unit then needs `NotifyAccess=all`.
 */
function loadSender(logger: Logger): Send {
  try {
    const unix = createRequire(import.meta.url)('unix-dgram') as typeof import('unix-dgram');
    const socket = unix.createSocket('unix_dgram');
    // A send error also arrives as an event; the callback below already reports it.
    socket.on('error', () => {});
    return (path, message) =>
      new Promise((resolve, reject) => {
        const buf = Buffer.from(message);
        socket.send(buf, 0, buf.length, path, (error) => (error ? reject(error) : resolve()));
      });
  } catch (error) {
    logger.warn(
      { err: (error as Error).message },
      'unix-dgram unavailable: sd_notify through systemd-notify (the unit needs NotifyAccess=all)',
    );
    return (_path, message) =>
      new Promise((resolve, reject) =>
        execFile('systemd-notify', message.split('\n'), (error) => (error ? reject(error) : resolve())),
      );
  }
}

export interface SdNotifyOptions {
  /** The environment systemd gave the process (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID). */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** A one-line state for `systemctl status`, read at each watchdog ping. */
  status?: () => string;
  /** Test seam: the datagram sender. */
  send?: Send;
}

/**
 * The systemd notify protocol, spoken by the daemon itself: READY=1 once it serves, WATCHDOG=1 from the event
 * loop at half the unit's WatchdogSec (a loop that is stuck stops the pings and systemd restarts the service),
 * STATUS= with a one-line state, STOPPING=1 when the stop begins. Without NOTIFY_SOCKET (not under systemd:
 * a shell, balena, a test) every call does nothing.
 */
export class SdNotify {
  readonly enabled: boolean;
  /** the watchdog ping period, ms; undefined without a watchdog */
  readonly watchdogMs: number | undefined;
  readonly #path: string;
  readonly #send: Send | undefined;
  readonly #o: SdNotifyOptions;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;

  constructor(options: SdNotifyOptions) {
    this.#o = options;
    const socket = options.env.NOTIFY_SOCKET;
    this.enabled = typeof socket === 'string' && socket.length > 0;
    // '@' names a socket in the abstract namespace.
    this.#path = !socket ? '' : socket.startsWith('@') ? `\0${socket.slice(1)}` : socket;
    const usec = Number(options.env.WATCHDOG_USEC);
    const pid = options.env.WATCHDOG_PID;
    const ours = pid === undefined || pid === '' || Number(pid) === process.pid;
    this.watchdogMs = this.enabled && ours && usec > 0 ? Math.max(100, usec / 2000) : undefined;
    this.#send = this.enabled ? (options.send ?? loadSender(options.logger)) : undefined;
  }

  /** READY=1 with the first STATUS, then the watchdog pings begin. */
  ready(): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    if (this.watchdogMs !== undefined) {
      this.#timer = setInterval(
        () => void this.#notify(`WATCHDOG=1\nSTATUS=${this.#statusLine()}`),
        this.watchdogMs,
      );
      this.#timer.unref();
    }
    return this.#notify(`READY=1\nSTATUS=${this.#statusLine()}\nMAINPID=${process.pid}`);
  }

  /** STOPPING=1; the watchdog pings end (systemd's stop timeout takes over). */
  stopping(): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    clearInterval(this.#timer);
    return this.#notify('STOPPING=1\nSTATUS=stopping');
  }

  /** A STATUS= line now (between pings). */
  status(line: string): Promise<void> {
    return this.enabled ? this.#notify(`STATUS=${line}`) : Promise.resolve();
  }

  #statusLine(): string {
    try {
      return (this.#o.status?.() ?? 'running').replace(/\s+/g, ' ').slice(0, 200);
    } catch {
      return 'running';
    }
  }

  async #notify(message: string): Promise<void> {
    try {
      await this.#send!(this.#path, message);
      this.#failures = 0;
    } catch (error) {
      // Logged on the first failure of a run of them: a gone socket must not flood the log.
      if (this.#failures++ === 0) this.#o.logger.warn({ err: (error as Error).message }, 'sd_notify failed');
    }
  }
}
