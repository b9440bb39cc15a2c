import { startTelegramBot, type TelegramBotOptions } from '../consumers/telegram-bot/index.js';
import { startTelegramNotifier, type TelegramNotifierOptions } from '../consumers/telegram-notifier/index.js';
import type { RoleStarter } from '../main.js';
import { createLogger, type Logger } from '../infra/logger.js';
import { combineRoles } from '../infra/roles.js';

export { combineRoles };
import { startTelegramWebhook } from '../producers/telegram-webhook/index.js';

/** A token of the real shape (`<bot id>:<35 characters>`), so shape-based redaction is exercised too. */
export const TEST_BOT_TOKEN = '7000000001:AAHtestTOKENdoNotLeak_0123456789abcd';
/** The webhook secret of the tests. */
export const TEST_WEBHOOK_SECRET = 'test-webhook-secret_0123';

let nextUpdateId = 500_000;
let nextMessageId = 100;

/** A chat of a fixture update. */
export interface FixtureChat {
  id: number;
  type?: 'private' | 'group' | 'supergroup';
  username?: string;
  first_name?: string;
}

const chatOf = (c: FixtureChat) => ({
  id: c.id,
  type: c.type ?? 'private',
  username: c.username,
  first_name: c.first_name ?? 'Ana',
});
const fromOf = (c: FixtureChat) => ({
  id: Math.abs(c.id),
  is_bot: false,
  first_name: c.first_name ?? 'Ana',
  username: c.username,
});

function message(chat: FixtureChat, extra: Record<string, unknown>) {
  return {
    update_id: nextUpdateId++,
    message: {
      message_id: nextMessageId++,
      date: Math.floor(Date.now() / 1000),
      chat: chatOf(chat),
      from: fromOf(chat),
      ...extra,
    },
  };
}

/** Bot API Update builders (https://core.telegram.org/bots/api#update). */
export const updates = {
  /** A text message (a command when it starts with `/`). */
  text: (chat: FixtureChat, text: string) => message(chat, { text }),
  /** A document. */
  document: (
    chat: FixtureChat,
    doc: {
      file_id: string;
      file_unique_id: string;
      file_size?: number;
      file_name?: string;
      mime_type?: string;
    },
    caption?: string,
  ) => message(chat, { document: doc, ...(caption ? { caption } : {}) }),
  /** A photo in its sizes, smallest first, as Telegram sends it. */
  photo: (
    chat: FixtureChat,
    sizes: { file_id: string; file_unique_id: string; width: number; height: number; file_size?: number }[],
  ) => message(chat, { photo: sizes }),
  /** A press of an inline button under the bot's message `messageId` (the query id from the fake). */
  callback: (chat: FixtureChat, data: string, messageId: number, queryId: string) => ({
    update_id: nextUpdateId++,
    callback_query: {
      id: queryId,
      from: fromOf(chat),
      message: { message_id: messageId, date: Math.floor(Date.now() / 1000), chat: chatOf(chat) },
      chat_instance: `ci${chat.id}`,
      data,
    },
  }),
  /** The user blocked the bot. */
  blocked: (chat: FixtureChat) => ({
    update_id: nextUpdateId++,
    my_chat_member: {
      chat: chatOf(chat),
      from: fromOf(chat),
      date: Math.floor(Date.now() / 1000),
      old_chat_member: { status: 'member', user: { id: 1, is_bot: true, first_name: 'bot' } },
      new_chat_member: { status: 'kicked', user: { id: 1, is_bot: true, first_name: 'bot' }, until_date: 0 },
    },
  }),
};

/** POSTs an update to a running Postroom's webhook, as Telegram does. */
export async function postUpdate(
  port: number,
  update: unknown,
  secret: string | null = TEST_WEBHOOK_SECRET,
): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}/telegram/webhook`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(secret === null ? {} : { 'X-Telegram-Bot-Api-Secret-Token': secret }),
    },
    body: typeof update === 'string' ? update : JSON.stringify(update),
  });
}

/** A logger that keeps every line it writes (to check what logs contain). */
export function capturingLogger(level = 'debug'): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = createLogger(level, { write: (line: string) => void lines.push(line) });
  return { log, lines };
}

/**
 * Role starters for in-process tests: `telegram` = webhook + bot, `notify` = notifier, as Postroom
 * wires them (kept here so a test of one Telegram part may run the others without importing them).
 */
export function telegramStarters(options: TelegramBotOptions & TelegramNotifierOptions = {}): {
  telegram: RoleStarter;
  notify: RoleStarter;
} {
  return {
    telegram: async (ctx) =>
      combineRoles(await startTelegramWebhook(ctx, options), await startTelegramBot(ctx, options)),
    notify: (ctx) => startTelegramNotifier(ctx, options),
  };
}
