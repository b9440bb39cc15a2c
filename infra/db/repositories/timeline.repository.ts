import type { Insertable, Kysely, Transaction } from 'kysely';
import type { Database } from '../tables/index.js';

/** One timeline entry to record. */
export interface TimelineEntry {
  /** The email it belongs to. */
  emailId: string;
  /** `ingest`, `analysis`, `drive`, `outbound`, `notify`, `dead-letter`. */
  stage: string;
  /** What happened: an event type (`email.received`) or a short verb (`imap.flagged`). */
  event: string;
  /** Optional detail (an attachment id and verdict, an error code). */
  detail?: string | null;
  /** When; now by default. */
  at?: Date;
}

type TimelineRow = Insertable<Database['timeline']>;

/** Rows held back per transaction by {@link gatherTimeline}. */
const gathered = new WeakMap<Transaction<Database>, TimelineRow[]>();

function rowsOf(entries: readonly TimelineEntry[]): TimelineRow[] {
  const now = new Date();
  return entries.map((e) => ({
    email_id: e.emailId,
    at: e.at ?? now,
    stage: e.stage,
    event: e.event,
    detail: e.detail === undefined || e.detail === null ? null : e.detail.slice(0, 4000),
  }));
}

async function insertRows(db: Kysely<Database> | Transaction<Database>, rows: TimelineRow[]): Promise<void> {
  if (rows.length > 0) await db.insertInto('timeline').values(rows).execute();
}

/** Appends entries to emails' timelines (in the caller's transaction, so they commit with the effect). */
export async function appendTimeline(
  db: Kysely<Database> | Transaction<Database>,
  entries: readonly TimelineEntry[],
): Promise<void> {
  if (entries.length === 0) return;
  // Inside gatherTimeline: kept (with their time taken now) for the one INSERT at its end.
  const held = gathered.get(db as Transaction<Database>);
  if (held) held.push(...rowsOf(entries));
  else await insertRows(db, rowsOf(entries));
}

/**
 * Runs `fn` with the timeline entries appended in `trx` held back, then writes them all in one INSERT
 * in the same transaction: the commits of a batch of messages (CommitBatcher) write their entries with
 * one statement instead of one each. Entries keep the time and order they were appended in.
 */
export async function gatherTimeline<T>(trx: Transaction<Database>, fn: () => Promise<T>): Promise<T> {
  const rows: TimelineRow[] = [];
  gathered.set(trx, rows);
  try {
    const result = await fn();
    gathered.delete(trx);
    await insertRows(trx, rows);
    return result;
  } finally {
    gathered.delete(trx);
  }
}
