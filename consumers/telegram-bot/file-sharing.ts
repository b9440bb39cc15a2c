import type { HandlerContext } from '../../infra/broker/handler.js';
import { isChatSubscribed } from '../../infra/db/repositories/telegram.repository.js';
import { openAttachmentContent, type AttachmentContentDeps } from '../../infra/drive/attachment-content.js';
import { describeError, isRetryable, PostroomError } from '../../infra/errors.js';
import { clipText, escapeHtml, formatBytes, htmlLink } from '../../infra/telegram/html.js';
import {
  BOT_API_UPLOAD_MAX_BYTES,
  telegramErrorCode,
  type TelegramClient,
} from '../../infra/telegram/telegram-client.js';

/** What sending files back needs. */
export interface FileSharingDeps {
  client: TelegramClient;
  /** Where attachment bytes are read (MySQL, else the filed copy). */
  content: AttachmentContentDeps;
  /** `TELEGRAM_ALLOWED_CHATS`; null: subscribed chats may ask. */
  allowedChats?: ReadonlySet<string> | null;
}

/** One request for a file: `/get <id>` or a button press. */
export interface FileRequest {
  chatId: string;
  updateId: number;
  attachmentId: string;
  /** The message to answer (the `/get` command), if any. */
  replyTo?: number;
}

/** How a request ended, and the short text a button press is answered with. */
export interface FileRequestOutcome {
  kind: 'sent' | 'link' | 'refused' | 'repeated' | 'gone';
  /** For answerCallbackQuery (at most 200 characters, plain text). */
  toast: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Sends an attachment back to a chat as a document, if that chat may have it: the chat may use the bot
 * (`TELEGRAM_ALLOWED_CHATS` when set, else it is subscribed) and was notified about the email, or sent
 * the file itself. Unknown and forbidden ids get the same answer, so ids cannot be probed. Quarantined
 * files are never sent (nor rejected ones); over Telegram's 50 MB upload limit the Drive link is sent.
 *
 * A redelivered update sends the file once: the request is recorded under (chat, update_id) before the
 * upload and marked `sent` after it. Telegram has no idempotency key, so a crash between its answer and
 * that commit sends the file again on redelivery (at least once, as notifications do).
 */
export async function shareAttachment(
  deps: FileSharingDeps,
  ctx: HandlerContext,
  req: FileRequest,
  reply: (html: string) => Promise<void>,
): Promise<FileRequestOutcome> {
  const refuse = async (html: string, toast: string): Promise<FileRequestOutcome> => {
    await reply(html);
    return { kind: 'refused', toast };
  };
  const allowed = deps.allowedChats
    ? deps.allowedChats.has(req.chatId)
    : await isChatSubscribed(ctx.db, req.chatId);
  if (!allowed)
    return refuse(
      'Files are sent only to chats that use this bot: /start first.',
      'Not available in this chat',
    );
  const notFound = () =>
    refuse(
      `No attachment <code>${escapeHtml(clipText(req.attachmentId, 64))}</code> for this chat.`,
      'No such attachment here',
    );
  if (!UUID.test(req.attachmentId)) return notFound();
  const row = await ctx.db
    .selectFrom('attachments')
    .innerJoin('emails', 'emails.id', 'attachments.email_id')
    .select([
      'attachments.id',
      'attachments.email_id',
      'attachments.filename',
      'attachments.size',
      'attachments.sha256',
      'attachments.stored',
      'attachments.verdict',
      'attachments.detected_type',
      'attachments.drive_status',
      'attachments.drive_file_id',
      'attachments.drive_link',
      'emails.source',
      'emails.chat_id',
    ])
    .where('attachments.id', '=', req.attachmentId.toLowerCase())
    .executeTakeFirst();
  if (!row) return notFound();
  const sentItself = row.source === 'telegram' && row.chat_id === req.chatId;
  const notified =
    sentItself ||
    Boolean(
      await ctx.db
        .selectFrom('notifications')
        .select('id')
        .where('email_id', '=', row.email_id)
        .where('chat_id', '=', req.chatId)
        .where('status', '=', 'sent')
        .executeTakeFirst(),
    );
  if (!notified) return notFound();
  const name = escapeHtml(clipText(row.filename, 200));
  if (row.verdict === 'quarantined')
    return refuse(`🛑 <b>${name}</b> is quarantined: it is never sent.`, 'Quarantined: never sent');
  if (row.verdict !== 'accepted')
    return refuse(
      `<b>${name}</b> was not accepted (${escapeHtml(row.verdict)}): it is not sent.`,
      'Not sent',
    );

  const size = Number(row.size);
  if (size > BOT_API_UPLOAD_MAX_BYTES) {
    const html = row.drive_link
      ? `<b>${name}</b> (${formatBytes(size)}) is over Telegram's 50 MB limit for bots: ${htmlLink(row.drive_link, 'open it in Drive')}`
      : `<b>${name}</b> (${formatBytes(size)}) is over Telegram's 50 MB limit for bots, and it has no Drive link.`;
    await reply(html);
    return { kind: 'link', toast: 'Too large for Telegram: link sent' };
  }

  // Recorded before the upload: a redelivery of this update finds it sent.
  const now = new Date();
  await ctx.db
    .insertInto('telegram_file_sends')
    .ignore()
    .values({
      chat_id: req.chatId,
      update_id: req.updateId,
      attachment_id: row.id,
      status: 'pending',
      telegram_message_id: null,
      detail: null,
      created_at: now,
      updated_at: now,
    })
    .execute();
  const record = await ctx.db
    .selectFrom('telegram_file_sends')
    .select('status')
    .where('chat_id', '=', req.chatId)
    .where('update_id', '=', req.updateId)
    .executeTakeFirstOrThrow();
  if (record.status !== 'pending') return { kind: 'repeated', toast: 'Already sent' };
  const finish = (status: 'sent' | 'failed', messageId: number | null, detail: string | null) =>
    ctx.db
      .updateTable('telegram_file_sends')
      .set({ status, telegram_message_id: messageId, detail, updated_at: new Date() })
      .where('chat_id', '=', req.chatId)
      .where('update_id', '=', req.updateId)
      .execute();

  // Opened before the upload starts, so a file gone from Drive is answered in words.
  let opened;
  try {
    opened = await openAttachmentContent(deps.content, { ...row, size });
  } catch (err) {
    if (err instanceof PostroomError && /^(FILE|CONTENT)\.(GONE|NOT_STORED)$/.test(err.code)) {
      await finish('failed', null, describeError(err));
      await reply(`<b>${name}</b> is no longer available: its bytes are gone.`);
      return { kind: 'gone', toast: 'No longer available' };
    }
    throw err;
  }
  try {
    const message = await deps.client.sendDocument(
      req.chatId,
      {
        filename: row.filename,
        contentType: row.detected_type ?? 'application/octet-stream',
        open: async () => opened.stream,
      },
      { replyTo: req.replyTo, captionHtml: `📎 ${name}` },
    );
    await finish('sent', message.message_id, null);
    ctx.log.info({ chatId: req.chatId, attachmentId: row.id, origin: opened.origin }, 'file sent to chat');
    return { kind: 'sent', toast: `Sending ${clipText(row.filename, 150)}` };
  } catch (err) {
    opened.stream.destroy();
    if (telegramErrorCode(err) === 403 || !isRetryable(err) || ctx.lastAttempt) {
      await finish('failed', null, describeError(err));
      ctx.log.warn({ err, chatId: req.chatId, attachmentId: row.id }, 'file not sent; giving up');
      if (telegramErrorCode(err) !== 403) await reply(`<b>${name}</b> could not be sent.`);
      return { kind: 'refused', toast: 'Could not be sent' };
    }
    throw err;
  }
}
