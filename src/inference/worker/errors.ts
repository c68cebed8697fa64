import { OutpostError } from '../../common/index.js';

/** The worker process ended while a request was open. */
export class WorkerCrashedError extends OutpostError {
  override readonly name = 'WorkerCrashedError';
  readonly code = 'OUTPOST_WORKER_CRASHED';
  constructor(
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    /** the kernel's OOM killer took it (see WorkerExit.oomLikely) */
    readonly oomLikely = false,
  ) {
    super(
      `the inference worker exited (${signal ? `signal ${signal}` : `code ${exitCode}`}${
        oomLikely ? ', likely killed by the kernel for memory' : ''
      })`,
    );
  }
}

/** A request outlived its time limit and was aborted (or its worker killed). */
export class WorkerTimeoutError extends OutpostError {
  override readonly name = 'WorkerTimeoutError';
  readonly code = 'OUTPOST_WORKER_TIMEOUT';
  constructor(
    readonly request: string,
    readonly timeoutMs: number,
    /** it did not answer the abort either and was killed */
    readonly workerKilled = false,
  ) {
    super(
      `the inference worker did not finish ${request} within ${timeoutMs} ms${
        workerKilled ? '; it did not answer the abort and was killed' : ''
      }`,
    );
  }
}

/** The worker answered a request with an error of the runtime. */
export class WorkerFailedError extends OutpostError {
  override readonly name = 'WorkerFailedError';
  readonly code = 'OUTPOST_WORKER_FAILED';
  constructor(
    readonly request: string,
    readonly detail: string,
  ) {
    super(`${request} failed in the inference worker: ${detail}`);
  }
}
