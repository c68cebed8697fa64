import { OutpostError } from '../common/index.js';

/** The HTTPS certificate or key (`http.tls`) cannot be read or used. */
export class ApiTlsError extends OutpostError {
  override readonly name = 'ApiTlsError';
  readonly code = 'OUTPOST_API_TLS';
  constructor(
    /** the config key at fault: http.tls.cert, http.tls.key or http.tls */
    readonly key: string,
    readonly detail: string,
  ) {
    super(`${key}: ${detail}`);
  }
}
