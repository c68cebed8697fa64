export { Daemon, type DaemonEndpoints, type DaemonOptions, redactUrl, VERSION } from './daemon.js';
