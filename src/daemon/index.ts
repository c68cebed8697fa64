export { Daemon, type DaemonEndpoints, type DaemonOptions, VERSION } from './daemon.js';
export type { DiskProbe } from './disk.js';
export { redactUrl } from './parts.js';
export { SdNotify } from './sdNotify.js';
