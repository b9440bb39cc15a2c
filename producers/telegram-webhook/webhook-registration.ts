import { backoffMs } from '../../infra/backoff.js';
import type { Db } from '../../infra/db/database.js';
import { pruneTelegramUpdates } from '../../infra/db/repositories/telegram.repository.js';
import { isRetryable } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import type { TelegramClient } from '../../infra/telegram/telegram-client.js';

/** Update kinds the bot asks Telegram for: messages (commands, files), button presses (files back) and its own membership (blocked, removed). */
export const ALLOWED_UPDATES = ['message', 'callback_query', 'my_chat_member'];

/** Path of the webhook under the process's public URL. */
const WEBHOOK_PATH = '/telegram/webhook';

/**
 * The URL Telegram is told to call: `TELEGRAM_PUBLIC_URL` is the public base URL of this process
 * (`https://postroom.example`), `/telegram/webhook` is added unless it already ends with it.
 */
export function webhookUrl(publicUrl: string): string {
  const base = publicUrl.replace(/\/+$/, '');
  return base.endsWith(WEBHOOK_PATH) ? base : `${base}${WEBHOOK_PATH}`;
}

/** Something running in the background that stops. */
export interface Stoppable {
  stop(): void;
}

/**
 * Calls `setWebhook` with the secret and the allowed updates, in the background: start-up does not
 * wait for Telegram, and a failure is retried with backoff (up to a minute apart) until it works, the
 * role stops, or Telegram refuses the URL for good (logged as an error).
 */
export function registerWebhook(deps: {
  client: TelegramClient;
  publicUrl: string;
  secret: string;
  log: Logger;
}): Stoppable {
  const url = webhookUrl(deps.publicUrl);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const attempt = async (n: number): Promise<void> => {
    if (stopped) return;
    try {
      await deps.client.setWebhook({ url, secret_token: deps.secret, allowed_updates: ALLOWED_UPDATES });
      deps.log.info({ url }, 'Telegram webhook registered');
    } catch (err) {
      if (!isRetryable(err)) {
        deps.log.error(
          { err, url },
          'Telegram refused the webhook URL; updates will not arrive until it is fixed',
        );
        return;
      }
      const delay = backoffMs({ baseMs: 1_000, maxMs: 60_000, jitter: 0 }, n);
      deps.log.warn({ err, url, retryInMs: delay }, 'could not register the Telegram webhook yet');
      if (!stopped) timer = setTimeout(() => void attempt(n + 1), delay);
    }
  };
  void attempt(0);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/** How long accepted update ids are kept: Telegram stops re-sending an update long before. */
const UPDATE_RETENTION_MS = 7 * 24 * 3600_000;

/** Deletes accepted update ids older than {@link UPDATE_RETENTION_MS}, a minute after start, then hourly. */
export function pruneUpdatesPeriodically(db: Db, log: Logger, everyMs = 3600_000): Stoppable {
  const run = async () => {
    try {
      const n = await pruneTelegramUpdates(db, new Date(Date.now() - UPDATE_RETENTION_MS));
      if (n > 0) log.info({ deleted: n }, 'pruned old Telegram update ids');
    } catch (err) {
      log.warn({ err }, 'could not prune old Telegram update ids; trying again later');
    }
  };
  const first = setTimeout(() => void run(), 60_000);
  const every = setInterval(() => void run(), everyMs);
  first.unref();
  every.unref();
  return {
    stop() {
      clearTimeout(first);
      clearInterval(every);
    },
  };
}
