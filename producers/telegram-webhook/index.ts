import { ConfigError } from '../../infra/errors.js';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import {
  configuredTelegramClient,
  type TelegramClientOptions,
} from '../../infra/telegram/telegram-client.js';
import { createTelegramWebhookRouter } from './telegram-webhook.js';
import { webhookOpenApi } from './webhook-openapi.js';
import { pruneUpdatesPeriodically, registerWebhook, webhookUrl } from './webhook-registration.js';

export { createTelegramWebhookRouter, SECRET_HEADER } from './telegram-webhook.js';
export { ALLOWED_UPDATES, webhookUrl } from './webhook-registration.js';

/** Overrides for tests (client timeouts and waits). */
export type TelegramWebhookOptions = Partial<Pick<TelegramClientOptions, 'timeoutMs' | 'maxInProcessWaitMs'>>;

/**
 * Starts the Telegram webhook (half of role `telegram`): `POST /telegram/webhook` publishing each new
 * update as `telegram.update`; with `TELEGRAM_PUBLIC_URL`, `setWebhook` (secret and allowed updates)
 * in the background. Resolves null when `TELEGRAM_BOT_TOKEN` is unset.
 */
export async function startTelegramWebhook(
  ctx: RoleContext,
  options: TelegramWebhookOptions = {},
): Promise<RoleHandle | null> {
  const { TELEGRAM_WEBHOOK_SECRET: secret, TELEGRAM_PUBLIC_URL: publicUrl } = ctx.config;
  const log = ctx.log.child({ module: 'telegram-webhook' });
  const client = configuredTelegramClient(ctx.config, log, 'the Telegram webhook is', options);
  if (!client) return null;
  if (!secret) throw new ConfigError(['TELEGRAM_WEBHOOK_SECRET: is required when TELEGRAM_BOT_TOKEN is set']);
  const router = createTelegramWebhookRouter({ db: ctx.db, secret, botId: client.botId });
  const registration = publicUrl ? registerWebhook({ client, publicUrl, secret, log }) : null;
  const pruning = pruneUpdatesPeriodically(ctx.db, log);
  log.info(
    { path: '/telegram/webhook', url: publicUrl ? webhookUrl(publicUrl) : null },
    publicUrl
      ? 'Telegram webhook served; registering it with Telegram'
      : 'Telegram webhook served (TELEGRAM_PUBLIC_URL unset: not registered)',
  );
  return {
    routers: [{ path: '/telegram', router }],
    openapi: webhookOpenApi,
    async stop() {
      registration?.stop();
      pruning.stop();
    },
  };
}
