import type { Kysely, Transaction } from 'kysely';
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

/** Appends entries to emails' timelines (in the caller's transaction, so they commit with the effect). */
export async function appendTimeline(
  db: Kysely<Database> | Transaction<Database>,
  entries: readonly TimelineEntry[],
): Promise<void> {
  if (entries.length === 0) return;
  const now = new Date();
  await db
    .insertInto('timeline')
    .values(
      entries.map((e) => ({
        email_id: e.emailId,
        at: e.at ?? now,
        stage: e.stage,
        event: e.event,
        detail: e.detail === undefined || e.detail === null ? null : e.detail.slice(0, 4000),
      })),
    )
    .execute();
}
