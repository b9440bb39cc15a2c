import type { EmailProcessedV1 } from '../../contracts/index.js';
import type { ConsumerDefinition, HandlerContext } from '../../infra/broker/handler.js';
import { SUBSCRIPTIONS } from '../../infra/broker/subscriptions.js';
import { enqueueEvents, signalOutbox } from '../../infra/broker/outbox.js';
import {
  countNotificationAttempt,
  finishNotification,
  isChatSubscribed,
  listPendingNotifications,
  noteNotificationError,
  unsubscribeBlockedChat,
  type NotificationOutcome,
  type PendingNotification,
} from '../../infra/db/repositories/telegram.repository.js';
import { recordPendingNotifications } from '../../infra/db/repositories/follow-ups.repository.js';
import { appendTimeline } from '../../infra/db/repositories/timeline.repository.js';
import { describeError, isRetryable, RetryableError } from '../../infra/errors.js';
import { telegramErrorCode, type TelegramClient } from '../../infra/telegram/telegram-client.js';
import { telegramNotificationsTotal } from '../../infra/telegram/telegram-metrics.js';
import { LOCK_BUSY, withNamedLock } from '../../infra/db/named-lock.js';
import { notificationText, repliedMessageId } from './notification-text.js';
import { fileButtons } from '../../infra/telegram/file-buttons.js';

/** What the notifier needs. */
export interface TelegramNotifierDeps {
  client: TelegramClient;
  /** Chats sent to at once for one email (default 8; the rate limiter paces them). */
  concurrency?: number;
  /** Emails handled at once (default 4). */
  prefetch?: number;
}

/**
 * Runs `fn` over `items`, at most `limit` at a time. Every item is tried even when one fails (so no
 * send is still running once this returns); the first failure is then thrown.
 */
async function forEachLimited<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const failures: unknown[] = [];
  const worker = async () => {
    while (next < items.length) {
      try {
        await fn(items[next++]!);
      } catch (err) {
        failures.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failures.length > 0) throw failures[0];
}

/** Most sent-but-unrecorded notifications remembered (see below). */
const MAX_UNRECORDED = 10_000;

/**
 * Consumes `email.processed`. An email that came by mail goes to every subscribed chat; a file sent
 * to the bot is answered in its chat. Each (email, chat) gets a `notifications` row, `pending` from
 * the transaction that wrote the event (so the email is not `done` before it), and ONE message: only a pending row is sent, and it becomes `sent` (with
 * Telegram's message id), `unsubscribed` (the chat blocked the bot: 403, and the chat is unsubscribed)
 * or `failed` (refused for good, or still failing on the last attempt), with a `notify` timeline entry
 * and a `notification.sent` event in the same transaction. A 429 is honoured: short waits are taken
 * in-process, longer ones retry the event after `retry_after` (only the still pending chats).
 *
 * The crash window: Telegram has no idempotency key, so between its answer and the commit of `sent`
 * a crash (or a database failure) would leave the row pending and the chat would be told twice on
 * redelivery. Postroom takes that side (at least once) over marking rows before sending (at most
 * once: a crash would lose the message and leave a row that needs repair). The window is one
 * single-row commit; a database failure there is covered too: the message id is remembered in
 * memory and recorded on the retry without sending again. Two deliveries of one email at once (a
 * redelivery racing the original, a replay) are serialized by a MySQL named lock per email, so the
 * check "still pending" and the send are never interleaved for one chat.
 */
export function createTelegramNotifierHandler(
  deps: TelegramNotifierDeps,
): ConsumerDefinition<'email.processed'> {
  const unrecorded = new Map<string, number>();

  const finish = async (
    ctx: HandlerContext<'email.processed'>,
    n: PendingNotification,
    outcome: NotificationOutcome,
  ): Promise<void> => {
    const emailId = ctx.current.data.emailId;
    const event = ctx.event('notification.sent', {
      chatId: n.chatId,
      emailId,
      status: outcome.status,
      telegramMessageId: outcome.telegramMessageId,
    });
    const done = await ctx.db.transaction().execute(async (trx) => {
      if (!(await finishNotification(trx, n.id, outcome))) return false;
      const detail = [
        `chat ${n.chatId}`,
        outcome.telegramMessageId === null ? null : `message ${outcome.telegramMessageId}`,
        outcome.error,
      ]
        .filter(Boolean)
        .join(': ');
      await appendTimeline(trx, [
        { emailId, stage: 'notify', event: `notification.${outcome.status}`, detail },
      ]);
      await enqueueEvents(trx, [event]);
      return true;
    });
    unrecorded.delete(n.id);
    if (!done) return;
    signalOutbox();
    telegramNotificationsTotal.inc({ status: outcome.status });
    ctx.log.debug(
      { chatId: n.chatId, status: outcome.status, telegramMessageId: outcome.telegramMessageId },
      'notification finished',
    );
  };

  /** Sends one pending notification; returns the error to retry with, or null when it is final. */
  const notify = async (
    ctx: HandlerContext<'email.processed'>,
    n: PendingNotification,
    text: string,
  ): Promise<RetryableError | null> => {
    const d = ctx.current.data;
    const sentBefore = unrecorded.get(n.id);
    if (sentBefore !== undefined) {
      await finish(ctx, n, { status: 'sent', telegramMessageId: sentBefore, error: null });
      return null;
    }
    // Mail goes to subscribers: a chat that unsubscribed since the row was made is not told.
    if (d.source !== 'telegram' && !(await isChatSubscribed(ctx.db, n.chatId))) {
      await finish(ctx, n, {
        status: 'unsubscribed',
        telegramMessageId: null,
        error: 'unsubscribed before it was sent',
      });
      return null;
    }
    await countNotificationAttempt(ctx.db, n.id);
    let messageId: number;
    try {
      const replyTo = d.source === 'telegram' ? repliedMessageId(d.messageId) : undefined;
      // A button per accepted attachment sends the file back (`/get`), handled by the bot.
      const buttons = fileButtons(d.attachments);
      messageId = (await deps.client.sendMessage(n.chatId, text, { replyTo, buttons })).message_id;
    } catch (err) {
      if (telegramErrorCode(err) === 403) {
        await unsubscribeBlockedChat(ctx.db, n.chatId);
        ctx.log.info({ chatId: n.chatId }, 'the chat blocked the bot; unsubscribed it');
        await finish(ctx, n, { status: 'unsubscribed', telegramMessageId: null, error: describeError(err) });
        return null;
      }
      if (!isRetryable(err) || ctx.lastAttempt) {
        ctx.log.warn({ err, chatId: n.chatId, attempts: n.attempts + 1 }, 'notification failed for good');
        await finish(ctx, n, { status: 'failed', telegramMessageId: null, error: describeError(err) });
        return null;
      }
      await noteNotificationError(ctx.db, n.id, describeError(err));
      return err instanceof RetryableError
        ? err
        : new RetryableError('TELEGRAM.NOTIFY_FAILED', describeError(err), { cause: err });
    }
    if (unrecorded.size >= MAX_UNRECORDED) unrecorded.clear();
    unrecorded.set(n.id, messageId);
    await finish(ctx, n, { status: 'sent', telegramMessageId: messageId, error: null });
    return null;
  };

  return {
    name: 'telegram-notifier',
    events: SUBSCRIPTIONS['telegram-notifier'],
    prefetch: deps.prefetch ?? 4,
    async handle(event: EmailProcessedV1, ctx) {
      const d = event.data;
      // Normally recorded with the event already (recordFollowUps); this covers older events.
      const made = await ctx.db.transaction().execute((trx) => recordPendingNotifications(trx, d));
      const text = notificationText(d);
      const retry: RetryableError[] = [];
      // One sender per email at a time, across processes: a second delivery of the same event
      // waits, then finds those notifications no longer pending.
      const pending = await withNamedLock(ctx.db, `postroom:notify:${d.emailId}`, 60, async () => {
        const rows = await listPendingNotifications(ctx.db, d.emailId);
        await forEachLimited(rows, deps.concurrency ?? 8, async (n) => {
          const err = await notify(ctx, n, text);
          if (err) retry.push(err);
        });
        return rows;
      });
      if (pending === LOCK_BUSY)
        throw new RetryableError(
          'TELEGRAM.NOTIFY_BUSY',
          `Notifications of email ${d.emailId} are being sent by another consumer`,
        );
      if (pending.length === 0) ctx.log.debug({ emailId: d.emailId, made }, 'nobody to notify');
      if (retry.length > 0) {
        const retryAfterMs = Math.max(0, ...retry.map((e) => e.retryAfterMs ?? 0));
        throw new RetryableError(
          retry[0]!.code,
          `${retry.length} of ${pending.length} notification(s) not sent yet: ${retry[0]!.message}`,
          { cause: retry[0], retryAfterMs: retryAfterMs > 0 ? retryAfterMs : undefined },
        );
      }
    },
  };
}
