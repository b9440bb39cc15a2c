import { backoffMs } from '../backoff.js';
import type { Logger } from '../logger.js';
import { PermanentError, PostroomError, RetryableError } from '../errors.js';

/** How hard one Drive call is retried before the message goes back to the runner. */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 5). */
  attempts: number;
  /** First back-off delay in ms; doubles each time, with jitter (default 1000). */
  baseDelayMs: number;
  /** Longest single wait in ms; a longer `Retry-After` ends the in-call retries (default 16000). */
  maxDelayMs: number;
}

/** The default in-call budget: about 30 s of waiting at most, then the runner's own back-off. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 5, baseDelayMs: 1_000, maxDelayMs: 16_000 };

/** 403 reasons Drive uses for "slow down", as opposed to "not allowed". */
const RATE_LIMIT_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded']);
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** What went wrong in one Drive request, read from a gaxios error (or a network error). */
export interface DriveFailure {
  /** HTTP status, or undefined when no answer came. */
  status: number | undefined;
  /** Google's `errors[0].reason` (`rateLimitExceeded`), or an OAuth `error` (`invalid_grant`). */
  reason: string | undefined;
  /** Google's message, or the network error's code and message; never headers or tokens. */
  message: string;
  /** From a `Retry-After` header, in ms. */
  retryAfterMs: number | undefined;
  /** True when the request may succeed if sent again. */
  retryable: boolean;
}

interface GaxiosLike {
  status?: number;
  code?: string | number;
  message?: string;
  response?: { status?: number; data?: unknown; headers?: unknown };
  cause?: unknown;
}

/** Reads status, reason, message and `Retry-After` from whatever a Drive call threw. */
export function describeDriveFailure(err: unknown): DriveFailure {
  const e = (err ?? {}) as GaxiosLike;
  const status = e.response?.status ?? (typeof e.status === 'number' ? e.status : undefined);
  if (status === undefined) {
    const code = networkCode(err);
    return {
      status,
      reason: code,
      message: code ? `${code}: ${String(e.message ?? err)}` : String(e.message ?? err),
      retryAfterMs: undefined,
      retryable: code !== undefined,
    };
  }
  const data = e.response?.data as
    | { error?: string | { message?: string; errors?: { reason?: string }[] }; error_description?: string }
    | undefined;
  const apiError = typeof data?.error === 'object' ? data.error : undefined;
  const reason = apiError?.errors?.[0]?.reason ?? (typeof data?.error === 'string' ? data.error : undefined);
  const message = apiError?.message ?? data?.error_description ?? `HTTP ${status}`;
  const retryable =
    status >= 500 ||
    status === 429 ||
    status === 408 ||
    (status === 403 && RATE_LIMIT_REASONS.has(reason ?? ''));
  return { status, reason, message, retryAfterMs: retryAfter(e.response?.headers), retryable };
}

/**
 * Turns a Drive failure into a Postroom error with a stable code: rate limits, 5xx and network trouble
 * are `RetryableError`s (`DRIVE.RATE_LIMITED`, `DRIVE.UNAVAILABLE`, `DRIVE.UNREACHABLE`); the rest are
 * `PermanentError`s (`DRIVE.QUOTA_EXCEEDED`, `DRIVE.FORBIDDEN`, `DRIVE.NOT_FOUND`, `DRIVE.AUTH_FAILED` ...).
 * `what` says what was being done, `details` for which ids.
 */
export function toDriveError(
  err: unknown,
  what: string,
  details: Record<string, unknown> = {},
): PostroomError {
  if (err instanceof PostroomError) return err;
  const f = describeDriveFailure(err);
  const text = `Drive ${what} failed: ${f.status === undefined ? '' : `HTTP ${f.status} `}${f.reason ? `${f.reason}: ` : ''}${f.message}`;
  const options = {
    cause: Object.assign(new Error(f.message), { status: f.status, reason: f.reason }),
    details: { ...details, status: f.status, reason: f.reason },
  };
  if (f.status === undefined && f.reason === undefined)
    return new RetryableError('DRIVE.ERROR', `Drive ${what} failed: ${f.message}`, { cause: err, details });
  if (f.status === undefined) return new RetryableError('DRIVE.UNREACHABLE', text, options);
  if (f.status === 429 || (f.status === 403 && RATE_LIMIT_REASONS.has(f.reason ?? '')))
    return new RetryableError('DRIVE.RATE_LIMITED', text, { ...options, retryAfterMs: f.retryAfterMs });
  if (f.reason === 'dailyLimitExceeded')
    return new RetryableError('DRIVE.DAILY_LIMIT', text, { ...options, retryAfterMs: 3_600_000 });
  if (f.status >= 500 || f.status === 408) return new RetryableError('DRIVE.UNAVAILABLE', text, options);
  if (
    typeof f.reason === 'string' &&
    /^(invalid_grant|invalid_client|unauthorized_client|invalid_scope)$/.test(f.reason)
  )
    return new PermanentError('DRIVE.AUTH_FAILED', text, options);
  const code =
    f.reason === 'storageQuotaExceeded' ||
    f.reason === 'quotaExceeded' ||
    f.reason === 'teamDriveFileLimitExceeded'
      ? 'DRIVE.QUOTA_EXCEEDED'
      : ((
          {
            400: 'DRIVE.BAD_REQUEST',
            401: 'DRIVE.UNAUTHORIZED',
            403: 'DRIVE.FORBIDDEN',
            404: 'DRIVE.NOT_FOUND',
            409: 'DRIVE.CONFLICT',
            413: 'DRIVE.TOO_LARGE',
          } as Record<number, string>
        )[f.status] ?? 'DRIVE.REJECTED');
  return new PermanentError(code, text, options);
}

/** Codes of the failures that mean Drive is down, slow or over its rate for now: worth waiting out. */
export const DRIVE_OUTAGE_CODES: ReadonlySet<string> = new Set([
  'DRIVE.ERROR',
  'DRIVE.UNREACHABLE',
  'DRIVE.RATE_LIMITED',
  'DRIVE.DAILY_LIMIT',
  'DRIVE.UNAVAILABLE',
]);

/** True for a `RetryableError` of `DRIVE_OUTAGE_CODES`. */
export function isDriveOutage(err: unknown): boolean {
  return err instanceof RetryableError && DRIVE_OUTAGE_CODES.has(err.code);
}

/** Waits `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The wait before attempt `attempt + 1`: exponential with jitter, at least what the server asked. */
export function backoffDelay(policy: RetryPolicy, attempt: number, retryAfterMs?: number): number {
  return backoffMs({ baseMs: policy.baseDelayMs, maxMs: policy.maxDelayMs }, attempt - 1, retryAfterMs);
}

/**
 * Runs one Drive request, retrying rate limits (429, 403 `rateLimitExceeded`/`userRateLimitExceeded`),
 * 5xx and network errors with back-off within `policy`; then, or at once for anything else, throws
 * the Postroom error from `toDriveError`. `fn` is called afresh on each attempt, so it must rebuild
 * anything it consumes (such as an upload stream).
 */
export async function withDriveRetry<T>(
  what: string,
  details: Record<string, unknown>,
  policy: RetryPolicy,
  fn: () => Promise<T>,
  log?: Logger,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const f = describeDriveFailure(err);
      if (!f.retryable || err instanceof PostroomError || attempt >= policy.attempts)
        throw toDriveError(err, what, { ...details, attempts: attempt });
      const delay = backoffDelay(policy, attempt, f.retryAfterMs);
      if (delay > policy.maxDelayMs) throw toDriveError(err, what, { ...details, attempts: attempt });
      log?.warn(
        { ...details, status: f.status, reason: f.reason, attempt, delayMs: Math.round(delay) },
        `Drive ${what}: retrying`,
      );
      await sleep(delay);
    }
  }
}

function networkCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as GaxiosLike).cause, depth++) {
    const code = (e as GaxiosLike).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    if ((e as { type?: string }).type === 'system' || (e as { name?: string }).name === 'AbortError')
      return 'NETWORK';
  }
  return undefined;
}

function retryAfter(headers: unknown): number | undefined {
  const raw =
    headers && typeof (headers as Headers).get === 'function'
      ? (headers as Headers).get('retry-after')
      : (headers as Record<string, string> | undefined)?.['retry-after'];
  if (!raw) return undefined;
  const seconds = Number(raw);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
