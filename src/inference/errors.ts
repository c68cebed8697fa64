import { OutpostError } from '../common/index.js';

/** Why a model download failed; each kind has its own stable code and a message that says what to do. */
export type ModelPullFailure =
  /** DNS failure, refused connection or timeout before the transfer could start or go on. */
  | { kind: 'offline'; host: string; file: string; dir: string; detail: string }
  /** The server answered with an HTTP error status (401/403 gated or private, 404 moved, 5xx...). */
  | { kind: 'http'; host: string; file: string; url: string; status: number }
  /** The connection broke during the transfer more often than the retries allow; the .part file stays. */
  | { kind: 'interrupted'; host: string; file: string; receivedBytes: number; detail: string }
  /** The file's sha256 is not the catalog's; the bad file has been removed. */
  | { kind: 'checksum'; file: string; expected: string; actual: string }
  /** The file's size is not the catalog's (or not what the server announced); the bad file has been removed. */
  | { kind: 'size'; file: string; expected: number; actual: number }
  /** The model directory cannot be created or written (permissions, no space left). */
  | { kind: 'disk'; file: string; dir: string; detail: string };

const CODES = {
  offline: 'OUTPOST_MODEL_OFFLINE',
  http: 'OUTPOST_MODEL_HTTP',
  interrupted: 'OUTPOST_MODEL_INTERRUPTED',
  checksum: 'OUTPOST_MODEL_CHECKSUM',
  size: 'OUTPOST_MODEL_SIZE',
  disk: 'OUTPOST_MODEL_DISK',
} as const satisfies Record<ModelPullFailure['kind'], string>;

export type ModelPullErrorCode = (typeof CODES)[keyof typeof CODES];

function pullMessage(f: ModelPullFailure): string {
  switch (f.kind) {
    case 'offline':
      return (
        `cannot reach ${f.host} (offline?): copy ${f.file} into ${f.dir}, ` +
        `or set OUTPOST_MODEL to a local GGUF path (${f.detail})`
      );
    case 'http': {
      const hint =
        f.status === 401 || f.status === 403
          ? 'the repository is gated or private: download the file in a browser and copy it into the model directory'
          : f.status === 404
            ? 'the file is gone or was renamed upstream: update Outpost or set OUTPOST_MODEL to a local GGUF path'
            : 'try again later';
      return `${f.host} answered HTTP ${f.status} for ${f.file}: ${hint}`;
    }
    case 'interrupted':
      return (
        `download of ${f.file} from ${f.host} broke off after ${f.receivedBytes} bytes (${f.detail}): ` +
        'run the same command again to resume'
      );
    case 'checksum':
      return `${f.file} is corrupt or not the expected file (sha256 ${f.actual}, expected ${f.expected}); removed it, pull again`;
    case 'size':
      return `${f.file} has ${f.actual} bytes, expected ${f.expected}; removed it, pull again`;
    case 'disk':
      return `cannot write ${f.file} into ${f.dir} (${f.detail}): free some space or choose another directory`;
  }
}

/** `outpost model pull` (or the daemon's provisioning) could not put a model file in place. */
export class ModelPullError extends OutpostError {
  override readonly name = 'ModelPullError';
  readonly code: ModelPullErrorCode;
  constructor(readonly failure: ModelPullFailure) {
    super(pullMessage(failure));
    this.code = CODES[failure.kind];
  }
}

/** A file given as a model cannot be read as GGUF (missing, unreadable, or another format). */
export class ModelFileError extends OutpostError {
  override readonly name = 'ModelFileError';
  readonly code = 'OUTPOST_MODEL_FILE';
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

/** A job's generation outlived its task's time limit (inference.taskTimeouts.<task>, else inference.jobTimeout). */
export class TaskTimeoutError extends OutpostError {
  override readonly name = 'TaskTimeoutError';
  readonly code = 'OUTPOST_TASK_TIMEOUT';
  constructor(
    /** the job's task (explain, digest, frame, audio, ask) */
    readonly task: string,
    readonly timeoutMs: number,
    /** the setting that gave the limit, e.g. inference.taskTimeouts.frame */
    readonly setting: string,
    /** the worker did not answer the abort and was killed (and restarted) */
    readonly workerKilled: boolean,
  ) {
    super(
      `the ${task} task did not finish within ${timeoutMs / 1000} s (${setting})${
        workerKilled ? '; the inference worker did not answer the abort and was killed' : ''
      }`,
    );
  }
}

/** An error's message for a failure detail, prefixed with its system code (`ENOSPC: ...`) when it has one. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
