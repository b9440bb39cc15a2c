/**
 * Telegram's sending limits, kept in-process: about one message a second per chat (one every three
 * seconds in a group: 20 a minute), about 30 a second overall. Each send reserves the next free slot
 * of its chat, then of the whole bot, so concurrent senders keep to the rates without spinning.
 * A 429 pushes the chat's next slot past its `retry_after`.
 */

/** Options of the limiter (per second; defaults are Telegram's published limits). */
export interface RateLimiterOptions {
  /** Messages a second to one private chat (default 1). */
  perChatPerSecond?: number;
  /** Messages a second to one group or channel (negative chat id; default 20 a minute). */
  perGroupPerSecond?: number;
  /** Messages a second overall (default 30). */
  globalPerSecond?: number;
  /** Clock (tests). */
  now?: () => number;
  /** Sleep (tests). */
  sleep?: (ms: number) => Promise<void>;
}

/** An in-process limiter shared by every sender of one bot. */
export interface TelegramRateLimiter {
  /** Waits for the next slot of `chatId` (and of the bot), then takes it. */
  acquire(chatId: string): Promise<void>;
  /** Keeps `chatId` quiet for `ms` (after a 429 with `retry_after`). */
  backOff(chatId: string, ms: number): void;
  /** Milliseconds until `chatId` may be sent to again (0 when now). */
  delayFor(chatId: string): number;
}

/** Most chats remembered; older entries are dropped once their slot has passed. */
const MAX_CHATS = 10_000;

/** Creates a limiter; see {@link RateLimiterOptions} for the defaults. */
export function createRateLimiter(opts: RateLimiterOptions = {}): TelegramRateLimiter {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const chatInterval = 1000 / (opts.perChatPerSecond ?? 1);
  const groupInterval = 1000 / (opts.perGroupPerSecond ?? 20 / 60);
  const globalInterval = 1000 / (opts.globalPerSecond ?? 30);
  const nextByChat = new Map<string, number>();
  let nextGlobal = 0;

  const prune = (t: number) => {
    if (nextByChat.size < MAX_CHATS) return;
    for (const [chat, at] of nextByChat) if (at <= t) nextByChat.delete(chat);
  };

  return {
    async acquire(chatId) {
      // The chat's slot first (reserved at once, so senders to one chat queue up in order), then the
      // bot's: reserving a global slot in the future would hold up every other chat meanwhile.
      const t = now();
      prune(t);
      const chatSlot = Math.max(t, nextByChat.get(chatId) ?? 0);
      nextByChat.set(chatId, chatSlot + (chatId.startsWith('-') ? groupInterval : chatInterval));
      if (chatSlot > t) await sleep(chatSlot - t);
      const t2 = now();
      const globalSlot = Math.max(t2, nextGlobal);
      nextGlobal = globalSlot + globalInterval;
      if (globalSlot > t2) await sleep(globalSlot - t2);
    },
    backOff(chatId, ms) {
      nextByChat.set(chatId, Math.max(nextByChat.get(chatId) ?? 0, now() + ms));
    },
    delayFor(chatId) {
      return Math.max(0, (nextByChat.get(chatId) ?? 0) - now());
    },
  };
}
