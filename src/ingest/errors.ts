import { OutpostError } from '../common/index.js';

/** The embedded broker could not listen (port taken, address not local...). */
export class BrokerListenError extends OutpostError {
  override readonly name = 'BrokerListenError';
  readonly code = 'OUTPOST_BROKER_LISTEN';
  constructor(
    readonly host: string,
    readonly port: number,
    readonly detail: string,
  ) {
    super(`the embedded MQTT broker cannot listen on ${host}:${port}: ${detail}`);
  }
}

/** A TLS file named in the mqtt section cannot be read. */
export class TlsFileError extends OutpostError {
  override readonly name = 'TlsFileError';
  readonly code = 'OUTPOST_TLS_FILE';
  constructor(
    readonly key: string,
    readonly path: string,
    readonly detail: string,
  ) {
    super(`mqtt.${key}: cannot read ${path}: ${detail}`);
  }
}
