import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Selectable, type Transaction } from 'kysely';
import type { Database } from '../tables/index.js';
import type { CallsTable } from '../tables/outbound.table.js';

type Conn = Kysely<Database> | Transaction<Database>;

/** A call's state: waiting for (another) attempt, or final. */
export type CallStatus = 'pending' | 'succeeded' | 'failed';

/** One `calls` row as read. */
export type CallRow = Selectable<CallsTable>;

/** A call to record as soon as its event arrives. */
export interface NewCall {
  /** Hook name. */
  hook: string;
  eventId: string;
  eventType: string;
  /** The email the event belongs to, if any. */
  emailId: string | null;
  /** `Idempotency-Key` of every attempt. */
  idempotencyKey: string;
}

/**
 * Records calls as `pending` (the status API then knows the email still waits for them); a call
 * already recorded for the same hook and event is left as it is.
 */
export async function insertPendingCalls(db: Conn, calls: readonly NewCall[]): Promise<void> {
  if (calls.length === 0) return;
  const now = new Date();
  await db
    .insertInto('calls')
    .values(
      calls.map((c) => ({
        id: randomUUID(),
        hook: c.hook,
        event_id: c.eventId,
        event_type: c.eventType,
        email_id: c.emailId,
        status: 'pending',
        attempts: 0,
        last_status_code: null,
        last_error: null,
        idempotency_key: c.idempotencyKey,
        created_at: now,
        updated_at: now,
      })),
    )
    .onDuplicateKeyUpdate({ id: sql`id` })
    .execute();
}

/** Every call of one event, by hook name. */
export async function callsOfEvent(db: Conn, eventId: string): Promise<Map<string, CallRow>> {
  const rows = await db.selectFrom('calls').selectAll().where('event_id', '=', eventId).execute();
  return new Map(rows.map((r) => [r.hook, r]));
}

/** Puts a failed call back to `pending` (a parked event was replayed); true when it changed. */
export async function reopenCall(db: Conn, callId: string): Promise<boolean> {
  const r = await db
    .updateTable('calls')
    .set({ status: 'pending', updated_at: new Date() })
    .where('id', '=', callId)
    .where('status', '=', 'failed')
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** One attempt to record, and the state the call moves to. */
export interface AttemptRecord {
  /** HTTP status, or null with no answer. */
  statusCode: number | null;
  durationMs: number;
  /** Why it failed, or null. */
  error: string | null;
  /** `pending` while more attempts may come. */
  status: CallStatus;
}

/**
 * Appends an attempt to `call_attempts` and updates the call (attempts, last status code and error,
 * status), in the caller's transaction, with the call row locked. A call that is already final (a
 * concurrent delivery finished it) keeps its status and last outcome; only its attempt count grows. Returns the attempt number and whether this
 * attempt made the call final.
 */
export async function recordCallAttempt(
  trx: Transaction<Database>,
  callId: string,
  rec: AttemptRecord,
): Promise<{ attempt: number; finalized: boolean }> {
  const row = await trx
    .selectFrom('calls')
    .select(['attempts', 'status'])
    .where('id', '=', callId)
    .forUpdate()
    .executeTakeFirstOrThrow();
  const attempt = row.attempts + 1;
  const now = new Date();
  await trx
    .insertInto('call_attempts')
    .values({
      call_id: callId,
      attempt,
      status_code: rec.statusCode,
      duration_ms: Math.max(0, Math.round(rec.durationMs)),
      error: rec.error === null ? null : rec.error.slice(0, 4000),
      at: now,
    })
    .execute();
  const open = row.status === 'pending';
  await trx
    .updateTable('calls')
    .set({
      attempts: attempt,
      updated_at: now,
      ...(open
        ? {
            status: rec.status,
            last_status_code: rec.statusCode,
            last_error: rec.error === null ? null : rec.error.slice(0, 4000),
          }
        : {}),
    })
    .where('id', '=', callId)
    .execute();
  return { attempt, finalized: open && rec.status !== 'pending' };
}
