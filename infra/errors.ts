/**
 * The few typed errors of Postroom. Each has a stable `code` (for logs, dead letters and the API), a
 * `retryable` flag the consumer runner acts on, and the `cause` it wraps. Messages carry context (what
 * was being done, for which id) and never secrets.
 */

/** Options shared by every Postroom error. */
export interface PostroomErrorOptions {
  /** The error this one wraps, kept for logs. */
  cause?: unknown;
  /** Extra facts for logs (ids, counts); never secrets or message bodies. */
  details?: Record<string, unknown>;
}

/** Base class: a stable code and whether trying again can help. */
export class PostroomError extends Error {
  /** Stable machine-readable code, `AREA.WHAT` (for example `DRIVE.QUOTA_EXCEEDED`). */
  readonly code: string;
  /** True when the same work may succeed later (network, 5xx, lock timeouts). */
  readonly retryable: boolean;
  /** Extra facts for logs. */
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, retryable: boolean, options: PostroomErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = retryable;
    this.details = options.details;
  }
}

/** A failure that may heal: the runner retries it after a growing delay, then parks it. */
export class RetryableError extends PostroomError {
  /** Milliseconds the caller asked to wait before the next attempt (for example a `Retry-After`). */
  readonly retryAfterMs: number | undefined;

  constructor(code: string, message: string, options: PostroomErrorOptions & { retryAfterMs?: number } = {}) {
    super(code, message, true, options);
    this.retryAfterMs = options.retryAfterMs;
  }
}

/**
 * The work was not tried at all (a host's circuit is open): the runner sends the message back after
 * `retryAfterMs` without counting an attempt, so waiting out an outage spends no retry tier.
 */
export class DeferredError extends RetryableError {
  constructor(code: string, message: string, options: PostroomErrorOptions & { retryAfterMs: number }) {
    super(code, message, options);
  }
}

/** A failure that will not heal by waiting: the runner parks the message at once with this reason. */
export class PermanentError extends PostroomError {
  constructor(code: string, message: string, options: PostroomErrorOptions = {}) {
    super(code, message, false, options);
  }
}

/** A message or request that breaks its schema: never retried. */
export class ValidationError extends PermanentError {
  /** One line per problem, `path: message`. */
  readonly problems: string[];

  constructor(message: string, problems: string[], options: PostroomErrorOptions = {}) {
    super('VALIDATION.FAILED', `${message}: ${problems.join('; ')}`, options);
    this.problems = problems;
  }
}

/** Configuration that cannot be used; start-up prints it and exits non-zero. */
export class ConfigError extends PermanentError {
  /** One line per bad variable, `NAME: why`. */
  readonly problems: string[];

  constructor(problems: string[]) {
    super('CONFIG.INVALID', `Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/** True when an error (ours or a library's) is worth another attempt. Unknown errors count as retryable. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof PostroomError) return err.retryable;
  return true;
}

/** A short `code: message` for dead letters and API answers. */
export function describeError(err: unknown): string {
  if (err instanceof PostroomError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
