import { EventEmitter } from 'node:events';
import type { Kysely, Transaction } from 'kysely';
import { contracts, type AnyEvent } from '../../contracts/index.js';
import type { Database } from '../db/database.js';
import { recordFollowUps } from '../db/repositories/follow-ups.repository.js';
import { assertValidEvent } from './events.js';

/** Emits `pending` when rows were committed to the outbox, so the relay of this process publishes at once. */
export const outboxSignal = new EventEmitter();
outboxSignal.setMaxListeners(0);

/** Tells the relay of this process that committed rows are waiting (call after the commit). */
export function signalOutbox(): void {
  outboxSignal.emit('pending');
}

/**
 * Writes events to the outbox inside the caller's transaction, after validating each one, with the
 * calls and notifications they will cause (`recordFollowUps`), so an email is never `done` before
 * those exist. They are published only if that transaction commits; call `signalOutbox()` after the
 * commit for low latency (the relay also polls).
 */
export async function enqueueEvents(
  trx: Transaction<Database> | Kysely<Database>,
  events: readonly AnyEvent[],
): Promise<void> {
  if (events.length === 0) return;
  const now = new Date();
  const rows = events.map((event) => {
    assertValidEvent(event);
    return {
      event_id: event.id,
      exchange: contracts[event.type].exchange,
      routing_key: event.type,
      body: JSON.stringify(event),
      correlation_id: event.correlationId,
      created_at: now,
      sent_at: null,
    };
  });
  await recordFollowUps(trx, events);
  // Large batches are split so one statement stays well under max_allowed_packet.
  for (let i = 0; i < rows.length; i += 500)
    await trx
      .insertInto('outbox')
      .values(rows.slice(i, i + 500))
      .execute();
}
