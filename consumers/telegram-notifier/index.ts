import { startConsumer } from '../../infra/broker/consume.js';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import {
  configuredTelegramClient,
  type TelegramClientOptions,
} from '../../infra/telegram/telegram-client.js';
import { createTelegramNotifierHandler } from './telegram-notifier.handler.js';

export { createTelegramNotifierHandler } from './telegram-notifier.handler.js';
export { notificationText } from './notification-text.js';

/** Overrides for tests (client timeouts and waits). */
export type TelegramNotifierOptions = Partial<
  Pick<TelegramClientOptions, 'timeoutMs' | 'maxInProcessWaitMs'>
>;

/**
 * Starts the Telegram notifier (role `notify`): one message per processed email to each subscribed
 * chat, and the outcome of files sent to the bot. Resolves null when `TELEGRAM_BOT_TOKEN` is unset.
 */
export async function startTelegramNotifier(
  ctx: RoleContext,
  options: TelegramNotifierOptions = {},
): Promise<RoleHandle | null> {
  const log = ctx.log.child({ module: 'telegram-notifier' });
  const client = configuredTelegramClient(ctx.config, log, 'Telegram notifications are', options);
  if (!client) return null;
  const def = createTelegramNotifierHandler({ client });
  return startConsumer(def, ctx);
}
