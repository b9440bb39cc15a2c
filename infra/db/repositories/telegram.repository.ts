import type { Kysely, Transaction } from 'kysely';
import type { TelegramUpdateV1 } from '../../../contracts/index.js';
import { enqueueEvents, signalOutbox } from '../../broker/outbox.js';
import { isDuplicateKey } from '../database.js';
import type { Database } from '../tables/index.js';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * Accepts one webhook update: records its id and stages its `telegram.update` event in ONE
 * transaction, then signals the outbox relay. Answers `duplicate` (and writes nothing) when the
 * update was accepted before: Telegram re-sends an update until it gets a 2xx.
 */
export async function acceptTelegramUpdate(
  db: Kysely<Database>,
  botId: number,
  event: TelegramUpdateV1,
): Promise<'published' | 'duplicate'> {
  try {
    await db.transaction().execute(async (trx) => {
      await trx
        .insertInto('telegram_updates')
        .values({ bot_id: botId, update_id: event.data.updateId, received_at: new Date() })
        .execute();
      await enqueueEvents(trx, [event]);
    });
  } catch (err) {
    if (isDuplicateKey(err)) return 'duplicate';
    throw err;
  }
  signalOutbox();
  return 'published';
}

/** Deletes accepted update ids older than `before`; returns how many. */
export async function pruneTelegramUpdates(db: Db, before: Date): Promise<number> {
  const r = await db.deleteFrom('telegram_updates').where('received_at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** What Telegram tells of a chat (the `chat` of a message). */
export interface ChatFacts {
  /** Chat id, decimal. */
  chatId: string;
  /** `private`, `group`, `supergroup`, `channel`. */
  type: string;
  title?: string | null;
  username?: string | null;
  firstName?: string | null;
  lastName?: string | null;
}

/** A subscription change asked for by an update (`/start`, `/stop`, the bot blocked or removed). */
export interface SubscriptionChange {
  chat: ChatFacts;
  subscribed: boolean;
  /** `stop` or `blocked` when unsubscribing. */
  reason: string | null;
  /** The update that asked; an older update than the last applied one changes nothing. */
  updateId: number;
}

const cut = (v: string | null | undefined, max: number) => (v ? v.slice(0, max) : null);

/**
 * Applies a subscription change unless a newer update already decided (updates of one chat may be
 * handled out of order); refreshes the chat's names. Returns whether it was applied and whether the
 * chat was subscribed before.
 */
export async function setChatSubscription(
  db: Kysely<Database>,
  change: SubscriptionChange,
): Promise<{ applied: boolean; wasSubscribed: boolean }> {
  const { chat } = change;
  const now = new Date();
  const names = {
    type: chat.type.slice(0, 32),
    title: cut(chat.title, 255),
    username: cut(chat.username, 64),
    first_name: cut(chat.firstName, 255),
    last_name: cut(chat.lastName, 255),
  };
  const state = {
    subscribed: change.subscribed ? 1 : 0,
    state_update_id: change.updateId,
    ...(change.subscribed
      ? { subscribed_at: now, unsubscribed_reason: null }
      : { unsubscribed_at: now, unsubscribed_reason: change.reason }),
  };
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(async (trx) => {
        const row = await trx
          .selectFrom('telegram_chats')
          .select(['subscribed', 'state_update_id'])
          .where('chat_id', '=', chat.chatId)
          .forUpdate()
          .executeTakeFirst();
        if (!row) {
          await trx
            .insertInto('telegram_chats')
            .values({
              chat_id: chat.chatId,
              ...names,
              subscribed_at: null,
              unsubscribed_at: null,
              created_at: now,
              updated_at: now,
              ...state,
            })
            .execute();
          return { applied: true, wasSubscribed: false };
        }
        const newer = row.state_update_id === null || Number(row.state_update_id) < change.updateId;
        await trx
          .updateTable('telegram_chats')
          .set({ ...names, updated_at: now, ...(newer ? state : {}) })
          .where('chat_id', '=', chat.chatId)
          .execute();
        return { applied: newer, wasSubscribed: Number(row.subscribed) === 1 };
      });
    } catch (err) {
      // Two first updates of a new chat at once: the loser reads the winner's row next time.
      if (isDuplicateKey(err) && attempt < 3) continue;
      throw err;
    }
  }
}

/** Unsubscribes a chat that blocked the bot (a 403); returns true when it was subscribed. */
export async function unsubscribeBlockedChat(db: Db, chatId: string): Promise<boolean> {
  const now = new Date();
  const r = await db
    .updateTable('telegram_chats')
    .set({ subscribed: 0, unsubscribed_at: now, unsubscribed_reason: 'blocked', updated_at: now })
    .where('chat_id', '=', chatId)
    .where('subscribed', '=', 1)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Unsubscribes every subscribed chat not in `allowed` (TELEGRAM_ALLOWED_CHATS); returns how many. */
export async function unsubscribeChatsNotIn(db: Db, allowed: readonly string[]): Promise<number> {
  const now = new Date();
  let q = db
    .updateTable('telegram_chats')
    .set({ subscribed: 0, unsubscribed_at: now, unsubscribed_reason: 'not allowed', updated_at: now })
    .where('subscribed', '=', 1);
  if (allowed.length > 0) q = q.where('chat_id', 'not in', [...allowed]);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** True when the chat is subscribed. */
export async function isChatSubscribed(db: Db, chatId: string): Promise<boolean> {
  const row = await db
    .selectFrom('telegram_chats')
    .select('subscribed')
    .where('chat_id', '=', chatId)
    .executeTakeFirst();
  return Number(row?.subscribed ?? 0) === 1;
}

/** One notification still to send. */
export interface PendingNotification {
  id: string;
  chatId: string;
  /** Attempts made before this one. */
  attempts: number;
}

/** The notifications of an email still `pending`, oldest first. */
export async function listPendingNotifications(db: Db, emailId: string): Promise<PendingNotification[]> {
  const rows = await db
    .selectFrom('notifications')
    .select(['id', 'chat_id', 'attempts'])
    .where('email_id', '=', emailId)
    .where('status', '=', 'pending')
    .orderBy('created_at')
    .execute();
  return rows.map((r) => ({ id: r.id, chatId: r.chat_id, attempts: Number(r.attempts) }));
}

/** Counts one more send attempt (before sending, so a crash mid-send still shows it). */
export async function countNotificationAttempt(db: Db, id: string): Promise<void> {
  await db
    .updateTable('notifications')
    .set((eb) => ({ attempts: eb('attempts', '+', 1), updated_at: new Date() }))
    .where('id', '=', id)
    .execute();
}

/** Notes why an attempt failed, leaving the notification pending (it is retried). */
export async function noteNotificationError(db: Db, id: string, error: string): Promise<void> {
  await db
    .updateTable('notifications')
    .set({ last_error: error.slice(0, 4000), updated_at: new Date() })
    .where('id', '=', id)
    .execute();
}

/** A final state of a notification. */
export interface NotificationOutcome {
  status: 'sent' | 'failed' | 'unsubscribed';
  /** The message Telegram made (sent only). */
  telegramMessageId: number | null;
  /** Why it failed or was dropped. */
  error: string | null;
}

/**
 * Moves a pending notification to its final state (call in the transaction that records the
 * timeline entry and the `notification.sent` event). Returns false when it was no longer pending.
 */
export async function finishNotification(
  trx: Db,
  id: string,
  outcome: NotificationOutcome,
): Promise<boolean> {
  const r = await trx
    .updateTable('notifications')
    .set({
      status: outcome.status,
      telegram_message_id: outcome.telegramMessageId,
      last_error: outcome.error === null ? null : outcome.error.slice(0, 4000),
      updated_at: new Date(),
    })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}
