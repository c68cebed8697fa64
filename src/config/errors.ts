import { OutpostError } from '../common/index.js';

/** The configuration cannot be used; `problems` holds one line per bad key: where, expected, found. */
export class ConfigError extends OutpostError {
  override readonly name = 'ConfigError';
  readonly code = 'OUTPOST_CONFIG_INVALID';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}
