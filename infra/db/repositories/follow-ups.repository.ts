import { createHash, randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { AnyEvent, EmailProcessedV1 } from '../../../contracts/index.js';
import type { Database } from '../tables/index.js';
import { insertPendingCalls } from './outbound-calls.repository.js';
import { appendTimeline } from './timeline.repository.js';

type Conn = Kysely<Database> | Transaction<Database>;

/*
 * An honest `done`: an email is done once every attachment, call and notification of it is final,
 * so every call and notification must exist before it can be missed. They are recorded here, in the
 * transaction that writes the event causing them to the outbox (`enqueueEvents`), not later by the
 * consumer that makes them: there is no moment at which an email looks done while a hook or a chat
 * still has to hear of it. The consumers insert the same rows again on arrival (ignored when present),
 * for events written before this existed.
 */

/** Name space of Postroom's idempotency keys (a fixed random UUID, as UUIDv5 wants one). */
const KEY_NAMESPACE = Buffer.from('7d1c4a52e0b64f3f9a0e8a2f4c1b9d63', 'hex');

/**
 * The `Idempotency-Key` of one hook's call for one event: a UUIDv5 (RFC 9562, SHA-1 name-based) of
 * `<hook name>\n<event id>`, so every retry, redelivery or replay of the same event to the same hook
 * carries the same key, and no two hooks share one.
 */
export function idempotencyKey(hook: string, eventId: string): string {
  const hash = createHash('sha1').update(KEY_NAMESPACE).update(`${hook}\n${eventId}`, 'utf8').digest();
  const b = hash.subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A hook as registered: its name and the event types it is called for. */
export interface RegisteredHook {
  name: string;
  events: readonly string[];
}

/** `last_error` of a pending call whose hook left HOOKS_FILE: it is final, never made. */
export const HOOK_REMOVED = 'OUTBOUND.HOOK_REMOVED';

/**
 * Makes `hooks` the set the outbound role calls (called at its start). Pending calls of a hook that
 * is no longer registered will never be made: they become `failed` (`OUTBOUND.HOOK_REMOVED`), so their
 * emails can be done.
 */
export async function registerHooks(db: Kysely<Database>, hooks: readonly RegisteredHook[]): Promise<void> {
  const now = new Date();
  await db.transaction().execute(async (trx) => {
    const names = hooks.map((h) => h.name);
    let gone = trx.deleteFrom('hooks');
    if (names.length > 0) gone = gone.where('name', 'not in', names);
    await gone.execute();
    if (hooks.length > 0)
      await trx
        .insertInto('hooks')
        .values(hooks.map((h) => ({ name: h.name, events: JSON.stringify(h.events), registered_at: now })))
        .onDuplicateKeyUpdate((eb) => ({
          events: eb.fn('VALUES', [eb.ref('events')]),
          registered_at: now,
        }))
        .execute();
    let orphans = trx
      .updateTable('calls')
      .set({
        status: 'failed',
        last_error: `${HOOK_REMOVED}: the hook is no longer in HOOKS_FILE`,
        updated_at: now,
      })
      .where('status', '=', 'pending');
    if (names.length > 0) orphans = orphans.where('hook', 'not in', names);
    await orphans.execute();
  });
}

/** The email an event belongs to: `data.emailId` where the event has one. */
export function emailIdOf(event: AnyEvent): string | null {
  const id = (event.data as { emailId?: unknown }).emailId;
  return typeof id === 'string' ? id : null;
}

/** The subscribed chats. */
async function subscribers(db: Conn): Promise<string[]> {
  const rows = await db.selectFrom('telegram_chats').select('chat_id').where('subscribed', '=', 1).execute();
  return rows.map((r) => r.chat_id);
}

/** The chats told of a processed email: the sender's chat for a file sent to the bot, else every subscriber. */
async function chatsToTell(
  db: Conn,
  data: EmailProcessedV1['data'],
  subscribed?: readonly string[],
): Promise<string[]> {
  if (data.source === 'telegram') return data.chatId ? [data.chatId] : [];
  return subscribed ? [...subscribed] : subscribers(db);
}

/**
 * Records the notifications of a processed email as `pending` (one per chat; a row already there is
 * left alone), with a `notify` timeline entry when it made any. Returns how many it made. `subscribed`:
 * the subscribed chats, when the caller read them already in this transaction.
 */
export async function recordPendingNotifications(
  db: Conn,
  data: EmailProcessedV1['data'],
  subscribed?: readonly string[],
): Promise<number> {
  const chats = await chatsToTell(db, data, subscribed);
  if (chats.length === 0) return 0;
  const now = new Date();
  const r = await db
    .insertInto('notifications')
    .ignore()
    .values(
      chats.map((chatId) => ({
        id: randomUUID(),
        email_id: data.emailId,
        chat_id: chatId,
        status: 'pending',
        telegram_message_id: null,
        attempts: 0,
        last_error: null,
        created_at: now,
        updated_at: now,
      })),
    )
    .executeTakeFirst();
  const made = Number(r.numInsertedOrUpdatedRows ?? 0);
  if (made > 0)
    await appendTimeline(db, [
      {
        emailId: data.emailId,
        stage: 'notify',
        event: 'notifications.pending',
        detail: `${made} chat(s) to tell`,
      },
    ]);
  return made;
}

/**
 * Records, as `pending`, every call and notification the events will cause: a call for each
 * registered hook of an event that belongs to an email, and the notifications of `email.processed`.
 * Call in the transaction that writes the events to the outbox.
 */
export async function recordFollowUps(db: Conn, events: readonly AnyEvent[]): Promise<void> {
  const ofEmails = events.filter((e) => emailIdOf(e) !== null);
  if (ofEmails.length === 0) return;
  const { hooks, subscribed } = await targets(
    db,
    ofEmails.some((e) => e.type === 'email.processed' && e.data.source !== 'telegram'),
  );
  const wanted = hooks.map((h) => ({ name: h.name, events: new Set(JSON.parse(h.events) as string[]) }));
  await insertPendingCalls(
    db,
    ofEmails.flatMap((e) =>
      wanted
        .filter((h) => h.events.has(e.type))
        .map((h) => ({
          hook: h.name,
          eventId: e.id,
          eventType: e.type,
          emailId: emailIdOf(e),
          idempotencyKey: idempotencyKey(h.name, e.id),
        })),
    ),
  );
  for (const e of ofEmails)
    if (e.type === 'email.processed') await recordPendingNotifications(db, e.data, subscribed);
}

/**
 * The registered hooks and, when `withChats`, the subscribed chats: in one statement (a UNION), as
 * closing an email needs both and each statement is a round trip.
 */
async function targets(
  db: Conn,
  withChats: boolean,
): Promise<{ hooks: { name: string; events: string }[]; subscribed?: string[] }> {
  if (!withChats) return { hooks: await db.selectFrom('hooks').select(['name', 'events']).execute() };
  const { rows } = await sql<{ kind: 'hook' | 'chat'; name: string; events: string | null }>`
    SELECT 'hook' AS kind, name, events FROM hooks
    UNION ALL
    SELECT 'chat' AS kind, chat_id AS name, NULL AS events FROM telegram_chats WHERE subscribed = 1`.execute(
    db,
  );
  return {
    hooks: rows.flatMap((r) => (r.kind === 'hook' ? [{ name: r.name, events: r.events ?? '[]' }] : [])),
    subscribed: rows.flatMap((r) => (r.kind === 'chat' ? [r.name] : [])),
  };
}
