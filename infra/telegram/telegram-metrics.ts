import { Counter, type Registry } from 'prom-client';
import { registry } from '../metrics.js';

// Reused when the module is evaluated twice in one process (test runners), since a registry refuses
// a second metric of the same name.
function counter<L extends string>(
  reg: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
): Counter<L> {
  return (
    (reg.getSingleMetric(name) as Counter<L> | undefined) ??
    new Counter<L>({ name, help, labelNames, registers: [reg] })
  );
}

/** Webhook calls by result: `published`, `duplicate`, `unauthorized`, `invalid`, `error`. */
export const telegramWebhookTotal = counter(
  registry,
  'postroom_telegram_webhook_requests_total',
  'Telegram webhook calls, by result (published, duplicate, unauthorized, invalid, error)',
  ['result'] as const,
);

/** Bot API calls by method and outcome (`ok`, `rate_limited`, `forbidden`, `client_error`, `server_error`, `network`). */
export const telegramApiCallsTotal = counter(
  registry,
  'postroom_telegram_api_calls_total',
  'Bot API calls, by method and outcome (ok, rate_limited, forbidden, client_error, server_error, network)',
  ['method', 'outcome'] as const,
);

/** Updates the bot handled, by kind (`start`, `stop`, `status`, `recent`, `help`, `file`, `ignored` ...). */
export const telegramBotUpdatesTotal = counter(
  registry,
  'postroom_telegram_bot_updates_total',
  'Telegram updates handled by the bot, by kind (start, stop, status, recent, help, file, file_too_large, ignored)',
  ['kind'] as const,
);

/** Notifications that reached a final state, by status (`sent`, `failed`, `unsubscribed`). */
export const telegramNotificationsTotal = counter(
  registry,
  'postroom_telegram_notifications_total',
  'Telegram notifications finished, by status (sent, failed, unsubscribed)',
  ['status'] as const,
);
