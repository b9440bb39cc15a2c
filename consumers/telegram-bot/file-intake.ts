import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BlobInfo, BlobStore } from '../../infra/blobs/blob-store.js';
import type { HandlerContext } from '../../infra/broker/handler.js';
import { findEmailIdByMessageId, recordEmail } from '../../infra/db/repositories/emails.repository.js';
import { isRetryable, PermanentError, PostroomError } from '../../infra/errors.js';
import { safeFilename } from '../../infra/safe-filename.js';
import {
  telegramErrorCode,
  telegramErrorDescription,
  type TelegramClient,
} from '../../infra/telegram/telegram-client.js';
import { fileFailedText, fileReceivedText, fileTooLargeText } from './bot-replies.js';
import type { IncomingFile, IncomingMessage } from './telegram-input.js';

/** What taking in a file needs. */
export interface FileIntakeDeps {
  client: TelegramClient;
  blobs: BlobStore;
  /** Largest file taken in (bytes): the Bot API's 20 MB, or ATTACHMENT_MAX_BYTES when smaller. */
  maxFileBytes: number;
}

/** Sends an answer in the chat of the message (errors handled by the caller's policy). */
export type Reply = (html: string) => Promise<void>;

/** How a file sent to the bot ended. */
export type IntakeOutcome = 'recorded' | 'duplicate' | 'too_large' | 'failed';

/**
 * The Message-ID a file sent to the bot is recorded under: stable for one Telegram message, so a
 * redelivered update is the same email.
 */
export function telegramMessageId(chatId: string, messageId: number): string {
  return `telegram-${chatId}-${messageId}@telegram.postroom`;
}

/** The name a file is recorded with, and its declared type. */
function describe(file: IncomingFile, messageId: number): { name: string; declaredType: string } {
  if (file.kind === 'photo') return { name: `photo-${messageId}.jpg`, declaredType: 'image/jpeg' };
  return {
    name: file.name ?? `document-${messageId}`,
    declaredType: file.mimeType ?? 'application/octet-stream',
  };
}

/** The sender as recorded in `from`: `@username`, else `telegram-user-<id>` (lower case, as addresses are). */
function senderOf(message: IncomingMessage): string {
  if (message.from?.username) return `@${message.from.username.toLowerCase()}`;
  if (message.from) return `telegram-user-${message.from.id}`;
  return `telegram-chat-${message.chat.chatId}`;
}

/**
 * Takes in a document or photo sent to the bot: `getFile`, then the bytes streamed from Telegram into
 * the blob store, then `recordEmail` (source `telegram`, the file as its only attachment), which
 * starts analysis and filing like for an email; the bot answers at once, and the notifier replies
 * with the outcome once `email.processed` arrives. A file over `maxFileBytes` (checked from
 * `file_size` first, since `getFile` refuses files over 20 MB) gets a clear answer and is not retried.
 * Transient failures are thrown (retried); on the last attempt the sender is told instead.
 */
export async function takeInFile(
  message: IncomingMessage,
  file: IncomingFile,
  deps: FileIntakeDeps,
  ctx: Pick<HandlerContext, 'db' | 'log' | 'lastAttempt'>,
  reply: Reply,
): Promise<IntakeOutcome> {
  const chatId = message.chat.chatId;
  const messageId = telegramMessageId(chatId, message.messageId);
  const { name, declaredType } = describe(file, message.messageId);
  const log = ctx.log.child({ chatId, telegramMessageId: message.messageId });
  const giveUp = async (err: unknown): Promise<IntakeOutcome> => {
    if (isRetryable(err) && !ctx.lastAttempt) throw err;
    log.warn({ err }, 'file sent to the bot could not be taken in');
    await reply(fileFailedText(name));
    return 'failed';
  };
  const tooLarge = async (size: number | null): Promise<IntakeOutcome> => {
    log.info({ size, maxBytes: deps.maxFileBytes }, 'file sent to the bot is too large');
    await reply(fileTooLargeText(name, size, deps.maxFileBytes));
    return 'too_large';
  };

  // A redelivered update: the email is there already; the answer may not have gone out.
  if (await findEmailIdByMessageId(ctx.db, messageId)) {
    await reply(fileReceivedText(name, file.size ?? 0));
    return 'duplicate';
  }
  if (file.size !== null && file.size > deps.maxFileBytes) return tooLarge(file.size);

  let filePath: string;
  let declaredSize: number | null = file.size;
  try {
    const info = await deps.client.getFile(file.fileId);
    if (typeof info.file_size === 'number') declaredSize = info.file_size;
    if (!info.file_path)
      return await giveUp(new PermanentError('TELEGRAM.NO_FILE_PATH', 'getFile gave no file_path'));
    filePath = info.file_path;
  } catch (err) {
    if (telegramErrorCode(err) === 400 && /too big/i.test(telegramErrorDescription(err)))
      return tooLarge(file.size);
    return giveUp(err);
  }
  if (declaredSize !== null && declaredSize > deps.maxFileBytes) return tooLarge(declaredSize);

  let stored: BlobInfo;
  let stream: Readable | null = null;
  try {
    stream = await deps.client.download(filePath);
    stored = await deps.blobs.put(stream, { maxBytes: deps.maxFileBytes });
  } catch (err) {
    if (err instanceof PostroomError && err.code === 'BLOB.TOO_LARGE') return tooLarge(null);
    return giveUp(err);
  } finally {
    if (stream && !stream.readableEnded) stream.destroy();
  }

  const filename = safeFilename(name, `telegram-${message.messageId}`);
  const { emailId, created } = await recordEmail(ctx.db, {
    source: 'telegram',
    chatId,
    receivedAt: message.date,
    parsed: {
      messageId,
      subject: message.caption?.trim() || name,
      from: senderOf(message),
      size: stored.size,
      warnings: [],
      attachments: [
        {
          id: randomUUID(),
          parentId: null,
          filename,
          originalFilename: name,
          declaredType,
          disposition: 'attachment',
          contentId: null,
          size: stored.size,
          sha256: stored.sha256,
          stored: true,
        },
      ],
    },
  });
  log.info(
    { emailId, created, size: stored.size, sha256: stored.sha256 },
    'file sent to the bot recorded as an email',
  );
  await reply(fileReceivedText(name, stored.size));
  return created ? 'recorded' : 'duplicate';
}
