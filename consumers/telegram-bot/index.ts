import { startConsumer } from '../../infra/broker/consume.js';
import { unsubscribeChatsNotIn } from '../../infra/db/repositories/telegram.repository.js';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import {
  BOT_API_DOWNLOAD_MAX_BYTES,
  configuredTelegramClient,
  type TelegramClientOptions,
} from '../../infra/telegram/telegram-client.js';
import { createTelegramBotHandler } from './telegram-bot.handler.js';
import { lazyFileStore } from '../../infra/drive/drive-client.js';

export { createTelegramBotHandler } from './telegram-bot.handler.js';
export { telegramMessageId } from './file-intake.js';

/** Overrides for tests (client timeouts and waits). */
export type TelegramBotOptions = Partial<
  Pick<TelegramClientOptions, 'timeoutMs' | 'maxInProcessWaitMs' | 'downloadTimeoutMs'>
>;

/**
 * Starts the Telegram bot consumer (half of role `telegram`): commands and files sent to the bot,
 * from `telegram.update` events. Resolves null when `TELEGRAM_BOT_TOKEN` is unset.
 */
export async function startTelegramBot(
  ctx: RoleContext,
  options: TelegramBotOptions = {},
): Promise<RoleHandle | null> {
  const log = ctx.log.child({ module: 'telegram-bot' });
  const client = configuredTelegramClient(ctx.config, log, 'the Telegram bot is', options);
  if (!client) return null;
  // The bot's username, to ignore commands meant for other bots in groups; asked once in the
  // background (the bot works without it, answering every command).
  let username: string | null = null;
  void client.getMe().then(
    (me) => {
      username = me.username?.toLowerCase() ?? null;
      log.info({ botId: me.id, username: me.username }, 'Telegram bot ready');
    },
    (err: unknown) =>
      log.warn({ err }, 'getMe failed; commands addressed to other bots will be answered too'),
  );
  const allowed = ctx.config.telegramAllowedChats;
  if (allowed) {
    // Chats taken off the list stop hearing about mail at once.
    const dropped = await unsubscribeChatsNotIn(ctx.db, allowed);
    log.info(
      { allowedChats: allowed.length, unsubscribed: dropped },
      'the bot answers only TELEGRAM_ALLOWED_CHATS',
    );
  } else {
    log.warn(
      'TELEGRAM_ALLOWED_CHATS is not set: any Telegram chat that finds the bot can subscribe and read email subjects',
    );
  }
  const def = createTelegramBotHandler({
    client,
    blobs: ctx.blobs,
    maxFileBytes: Math.min(BOT_API_DOWNLOAD_MAX_BYTES, ctx.config.ATTACHMENT_MAX_BYTES),
    botUsername: () => username,
    content: { blobs: ctx.blobs, files: lazyFileStore({ config: ctx.config, db: ctx.db, log }) },
    allowedChats: allowed ? new Set(allowed) : null,
  });
  return startConsumer(def, ctx);
}
