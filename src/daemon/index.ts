export { Daemon, type DaemonEndpoints, type DaemonOptions, VERSION } from './daemon.js';
export { redactUrl } from './parts.js';
