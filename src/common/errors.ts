/**
 * Base of every error Outpost raises on purpose: a stable `code` for programs and logs, a `name` per kind,
 * and a message built from the error's own parameters. Each stage declares its kinds in its `errors.ts`.
 */
export abstract class OutpostError extends Error {
  abstract readonly code: string;
}
