/**
 * One Telegram notification: one subscribed chat told about one processed email (migration
 * `20261126T1410-telegram`). Unique on (email_id, chat_id), so a chat is told once per email.
 */
export interface NotificationsTable {
  /** UUID of the notification. */
  id: string;
  /** The processed email. */
  email_id: string;
  /** Telegram chat id, decimal. */
  chat_id: string;
  /** `pending`, `sent`, `failed` or `unsubscribed`. */
  status: string;
  /** Id of the message Telegram answered with, once sent. */
  telegram_message_id: number | null;
  /** Send attempts made so far. */
  attempts: number;
  /** Why the last attempt failed. */
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * One Telegram chat the bot has talked with, and whether it wants notifications (`/start`, `/stop`).
 * A chat that blocks the bot (403, or a `my_chat_member` update saying so) is unsubscribed.
 */
export interface TelegramChatsTable {
  /** Telegram chat id, decimal (negative for groups and channels). */
  chat_id: string;
  /** `private`, `group`, `supergroup` or `channel`. */
  type: string;
  /** 1 while the chat gets a notification per processed email. */
  subscribed: number;
  /** Group or channel title. */
  title: string | null;
  /** `@username` of the chat, without the `@`. */
  username: string | null;
  /** First and last name of a private chat's user. */
  first_name: string | null;
  last_name: string | null;
  /**
   * update_id of the update that last changed `subscribed`: an older update processed late (updates
   * of one chat may be handled out of order) does not undo a newer `/start` or `/stop`.
   */
  state_update_id: number | null;
  /** Why the chat was last unsubscribed: `stop` (the command) or `blocked` (the bot was blocked or removed). */
  unsubscribed_reason: string | null;
  subscribed_at: Date | null;
  unsubscribed_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

/**
 * Updates the webhook accepted, so that Telegram re-sending one (it retries until it gets a 2xx) is
 * published once. Rows older than a week are pruned: Telegram gives up on an update long before.
 */
export interface TelegramUpdatesTable {
  /** The bot's id (the digits before `:` in its token): update ids are counted per bot. */
  bot_id: number;
  /** Telegram's `update_id`. */
  update_id: number;
  /** When the webhook accepted it (UTC). */
  received_at: Date;
}

/**
 * One update that asked for a file (`/get` or a button), so that a redelivered update sends the file
 * once (migration `20261203T0810-files-back`).
 */
export interface TelegramFileSendsTable {
  /** Telegram chat id, decimal. */
  chat_id: string;
  /** The update's `update_id`. */
  update_id: number;
  attachment_id: string;
  /** `pending` until sent, then `sent` (or `failed` when it can never be sent). */
  status: string;
  /** Id of the document message Telegram answered with. */
  telegram_message_id: number | null;
  /** Why it failed. */
  detail: string | null;
  created_at: Date;
  updated_at: Date;
}
