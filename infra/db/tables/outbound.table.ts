import type { Generated } from 'kysely';

/**
 * One outbound call: one hook of HOOKS_FILE for one event (migration `20261126T1400-outbound`).
 * Unique on (hook, event_id), so a redelivered event never makes a second call.
 */
export interface CallsTable {
  /** UUID of the call. */
  id: string;
  /** Hook name from HOOKS_FILE. */
  hook: string;
  /** Envelope id of the event that caused the call. */
  event_id: string;
  /** Envelope type of that event (`email.processed`, ...). */
  event_type: string;
  /** The email the event belongs to, when it belongs to one. */
  email_id: string | null;
  /** `pending`, `succeeded` or `failed`. */
  status: string;
  /** HTTP attempts made so far. */
  attempts: number;
  /** HTTP status of the last attempt (null: no answer, for example a network error). */
  last_status_code: number | null;
  /** Why the last attempt failed (no secrets). */
  last_error: string | null;
  /** `Idempotency-Key` sent with every attempt. */
  idempotency_key: string;
  created_at: Date;
  updated_at: Date;
}

/** One HTTP attempt of a call. */
export interface CallAttemptsTable {
  id: Generated<number>;
  /** The call (`calls.id`). */
  call_id: string;
  /** Attempt number from 1. */
  attempt: number;
  /** HTTP status (null: no answer). */
  status_code: number | null;
  /** Milliseconds the attempt took. */
  duration_ms: number;
  /** Why it failed (no secrets). */
  error: string | null;
  at: Date;
}
