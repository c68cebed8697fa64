import { OutpostError } from '../common/index.js';

/** The database file cannot be opened or migrated. */
export class StoreOpenError extends OutpostError {
  override readonly name = 'StoreOpenError';
  readonly code = 'OUTPOST_STORE_OPEN';
  constructor(
    readonly file: string,
    readonly detail: string,
  ) {
    super(`cannot open the database ${file}: ${detail}`);
  }
}
