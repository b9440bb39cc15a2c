import { createHash, randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../tables/index.js';
import type { DeadLettersTable } from '../tables/dead-letters.table.js';

/** A message to park. */
export interface ParkInput {
  consumer: string;
  queue: string;
  body: Buffer;
  headers: Record<string, unknown>;
  reason: string;
  attempts: number;
  eventId: string | null;
  eventType: string | null;
  correlationId: string | null;
}

/**
 * Records a parked message. The same message parked again (after a replay) updates its row, so the
 * list shows each message once with its latest reason.
 */
export async function parkMessage(db: Kysely<Database>, input: ParkInput): Promise<string> {
  const key = `${input.consumer}:${input.eventId ?? createHash('sha256').update(input.body).digest('hex')}`;
  const id = randomUUID();
  const now = new Date();
  const reason = input.reason.slice(0, 8_000);
  await db
    .insertInto('dead_letters')
    .values({
      id,
      dedupe_key: key.slice(0, 255),
      consumer: input.consumer,
      queue: input.queue,
      event_id: input.eventId?.slice(0, 64) ?? null,
      event_type: input.eventType?.slice(0, 100) ?? null,
      correlation_id: input.correlationId?.slice(0, 200) ?? null,
      body: input.body.toString('utf8'),
      headers: JSON.stringify(input.headers, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
      reason,
      attempts: input.attempts,
      parked_at: now,
      replayed_at: null,
    })
    .onDuplicateKeyUpdate({ reason, attempts: input.attempts, parked_at: now, replayed_at: null })
    .execute();
  const row = await db
    .selectFrom('dead_letters')
    .select('id')
    .where('dedupe_key', '=', key.slice(0, 255))
    .executeTakeFirst();
  return row?.id ?? id;
}

/** Filters and paging for listing dead letters (newest first). */
export interface ListDeadLettersOptions {
  /** Include ones already replayed (default false). */
  includeReplayed?: boolean;
  consumer?: string;
  limit?: number;
  /** Only rows parked before this instant (keyset paging). */
  before?: { parkedAt: Date; id: string };
}

/** Lists parked messages, newest first. */
export async function listDeadLetters(
  db: Kysely<Database>,
  opts: ListDeadLettersOptions = {},
): Promise<DeadLettersTable[]> {
  let q = db.selectFrom('dead_letters').selectAll();
  if (!opts.includeReplayed) q = q.where('replayed_at', 'is', null);
  if (opts.consumer) q = q.where('consumer', '=', opts.consumer);
  const before = opts.before;
  if (before)
    q = q.where((eb) =>
      eb.or([
        eb('parked_at', '<', before.parkedAt),
        eb.and([eb('parked_at', '=', before.parkedAt), eb('id', '<', before.id)]),
      ]),
    );
  return q
    .orderBy('parked_at', 'desc')
    .orderBy('id', 'desc')
    .limit(Math.min(opts.limit ?? 50, 500))
    .execute();
}

/** One dead letter by id, or undefined. */
export async function getDeadLetter(db: Kysely<Database>, id: string): Promise<DeadLettersTable | undefined> {
  return db.selectFrom('dead_letters').selectAll().where('id', '=', id).executeTakeFirst();
}

/** Marks a dead letter replayed. */
export async function markReplayed(db: Kysely<Database>, id: string): Promise<void> {
  await db.updateTable('dead_letters').set({ replayed_at: new Date() }).where('id', '=', id).execute();
}
