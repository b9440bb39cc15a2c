import type { TelegramUpdateV1 } from '../../contracts/index.js';
import type { ConsumerDefinition, HandlerContext } from '../../infra/broker/handler.js';
import { SUBSCRIPTIONS } from '../../infra/broker/subscriptions.js';
import {
  setChatSubscription,
  unsubscribeBlockedChat,
} from '../../infra/db/repositories/telegram.repository.js';
import { isRetryable } from '../../infra/errors.js';
import { telegramBotUpdatesTotal } from '../../infra/telegram/telegram-metrics.js';
import { telegramErrorCode } from '../../infra/telegram/telegram-client.js';
import {
  getUsageText,
  helpText,
  notAllowedText,
  recentText,
  startText,
  statusNotFoundText,
  statusText,
  statusUsageText,
  stopText,
  unknownCommandText,
} from './bot-replies.js';
import { findEmail, recentEmails } from './email-lookup.js';
import { shareAttachment, type FileSharingDeps } from './file-sharing.js';
import { parseGetButton } from '../../infra/telegram/file-buttons.js';
import { takeInFile, type FileIntakeDeps } from './file-intake.js';
import { parseCommand, readUpdate, type IncomingMessage } from './telegram-input.js';

/** What the bot consumer needs. */
export interface TelegramBotDeps extends FileIntakeDeps {
  /** Where attachment bytes are read for `/get` and the buttons (MySQL, else the filed copy). */
  content?: FileSharingDeps['content'];
  /** The bot's username (lower case, without `@`) when known: commands addressed to another bot are ignored. */
  botUsername?: () => string | null;
  /** Updates handled at once (default 4). */
  prefetch?: number;
  /** Chats allowed to use the bot (`TELEGRAM_ALLOWED_CHATS`); null: every chat. */
  allowedChats?: ReadonlySet<string> | null;
}

/** Runs `fn` after every earlier call with the same key has finished (replies in one chat stay in order). */
function serialPerKey() {
  const tails = new Map<string, Promise<void>>();
  return async <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const previous = tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const tail = previous.then(() => new Promise<void>((r) => (release = r)));
    tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (tails.get(key) === tail) tails.delete(key);
    }
  };
}

/**
 * Consumes `telegram.update`: `/start`, `/stop`, `/status <email id or Message-ID>`, `/recent`,
 * `/help` (and help for anything else in a private chat), documents and photos (taken in as emails:
 * see `takeInFile`), and the bot being blocked or removed (the chat is unsubscribed).
 *
 * State changes are committed before the answer is sent, and the answer before the update counts as
 * handled: an answer may be sent twice when the process dies right after sending it, never lost.
 * A chat that blocked the bot (403) is unsubscribed instead of answered; an answer Telegram refuses
 * for good is logged and dropped, so one bad chat never holds a message in the retry tiers.
 */
export function createTelegramBotHandler(deps: TelegramBotDeps): ConsumerDefinition<'telegram.update'> {
  const serial = serialPerKey();

  const replier =
    (ctx: HandlerContext, message: IncomingMessage) =>
    async (html: string): Promise<void> => {
      const chatId = message.chat.chatId;
      try {
        await deps.client.sendMessage(chatId, html, { replyTo: message.messageId });
      } catch (err) {
        if (telegramErrorCode(err) === 403) {
          const was = await unsubscribeBlockedChat(ctx.db, chatId);
          ctx.log.info({ chatId, wasSubscribed: was }, 'the chat blocked the bot; unsubscribed it');
          return;
        }
        if (isRetryable(err) && !ctx.lastAttempt) throw err;
        ctx.log.warn({ err, chatId }, 'answer not sent; giving up on it');
      }
    };

  const onMessage = async (message: IncomingMessage, ctx: HandlerContext): Promise<string> => {
    const reply = replier(ctx, message);
    if (deps.allowedChats && !deps.allowedChats.has(message.chat.chatId)) {
      // A private bot: strangers learn nothing and can subscribe to nothing.
      if (message.chat.type === 'private' || (message.text ?? '').startsWith('/'))
        await reply(notAllowedText(message.chat.chatId));
      return 'refused';
    }
    if (message.file) {
      const outcome = await takeInFile(message, message.file, deps, ctx, reply);
      return outcome === 'too_large' ? 'file_too_large' : 'file';
    }
    const command = message.text === null ? null : parseCommand(message.text);
    if (!command) {
      // In groups the bot hears only what is meant for it (privacy mode); chatter is not answered.
      if (message.chat.type !== 'private') return 'ignored';
      await reply(helpText());
      return 'help';
    }
    const me = deps.botUsername?.() ?? null;
    if (command.addressee && me && command.addressee !== me) return 'ignored';
    switch (command.name) {
      case 'start':
      case 'stop': {
        const subscribed = command.name === 'start';
        const r = await setChatSubscription(ctx.db, {
          chat: message.chat,
          subscribed,
          reason: subscribed ? null : 'stop',
          updateId: message.updateId,
        });
        // A newer /start or /stop of this chat was handled first: that one decided, and answered.
        if (!r.applied) return 'ignored';
        ctx.log.info(
          { chatId: message.chat.chatId, subscribed },
          subscribed ? 'chat subscribed' : 'chat unsubscribed',
        );
        await reply(subscribed ? startText(r.wasSubscribed) : stopText(r.wasSubscribed));
        return command.name;
      }
      case 'status': {
        if (!command.args) {
          await reply(statusUsageText());
          return 'status';
        }
        const email = await findEmail(ctx.db, command.args);
        await reply(email ? statusText(email) : statusNotFoundText(command.args));
        return 'status';
      }
      case 'recent':
        await reply(recentText(await recentEmails(ctx.db, 10)));
        return 'recent';
      case 'get': {
        if (!command.args || !deps.content) {
          await reply(getUsageText());
          return 'get';
        }
        const outcome = await shareAttachment(
          { client: deps.client, content: deps.content, allowedChats: deps.allowedChats },
          ctx,
          {
            chatId: message.chat.chatId,
            updateId: message.updateId,
            attachmentId: command.args.split(/\s+/)[0]!,
            replyTo: message.messageId,
          },
          reply,
        );
        return `get_${outcome.kind}`;
      }
      case 'help':
        await reply(helpText());
        return 'help';
      default:
        await reply(unknownCommandText(command.name));
        return 'unknown';
    }
  };

  /** A button press: `get:<attachment id>` sends the file; every press is answered (the spinner stops). */
  const onCallback = async (
    input: Extract<ReturnType<typeof readUpdate>, { kind: 'callback' }>,
    ctx: HandlerContext,
  ): Promise<string> => {
    const attachmentId = parseGetButton(input.data);
    let toast = 'This button does nothing any more';
    let kind = 'callback_unknown';
    const chat = input.chat;
    if (attachmentId && chat && deps.content) {
      const content = deps.content;
      const outcome = await serial(chat.chatId, () =>
        shareAttachment(
          { client: deps.client, content, allowedChats: deps.allowedChats },
          ctx,
          { chatId: chat.chatId, updateId: input.updateId, attachmentId },
          async (html) => {
            try {
              await deps.client.sendMessage(chat.chatId, html);
            } catch (err) {
              if (isRetryable(err) && !ctx.lastAttempt) throw err;
              ctx.log.warn({ err, chatId: chat.chatId }, 'answer not sent; giving up on it');
            }
          },
        ),
      );
      toast = outcome.toast;
      kind = `get_${outcome.kind}`;
    }
    try {
      await deps.client.answerCallbackQuery(input.callbackId, toast);
    } catch (err) {
      // Telegram refuses answers to old queries (a redelivered update): nothing is lost but a toast.
      ctx.log.info({ err, callbackId: input.callbackId }, 'callback query not answered');
    }
    return kind;
  };

  return {
    name: 'telegram-bot',
    events: SUBSCRIPTIONS['telegram-bot'],
    prefetch: deps.prefetch ?? 4,
    async handle(event: TelegramUpdateV1, ctx) {
      const input = readUpdate(event.data.update);
      let kind = 'ignored';
      if (input.kind === 'membership') {
        if (input.status === 'kicked' || input.status === 'left') {
          const r = await setChatSubscription(ctx.db, {
            chat: input.chat,
            subscribed: false,
            reason: 'blocked',
            updateId: input.updateId,
          });
          ctx.log.info(
            { chatId: input.chat.chatId, status: input.status, applied: r.applied },
            'the bot was blocked or removed; chat unsubscribed',
          );
          kind = 'blocked';
        }
      } else if (input.kind === 'callback') {
        kind = await onCallback(input, ctx);
      } else if (input.kind === 'message') {
        const message = input.message;
        kind = await serial(message.chat.chatId, () => onMessage(message, ctx));
      }
      telegramBotUpdatesTotal.inc({ kind });
    },
  };
}
