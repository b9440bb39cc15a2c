import type { ChatFacts } from '../../infra/db/repositories/telegram.repository.js';

/** A file sent to the bot: a document, or the largest size of a photo. */
export interface IncomingFile {
  kind: 'document' | 'photo';
  fileId: string;
  /** Bytes, when Telegram says. */
  size: number | null;
  /** The sender's file name (documents only). */
  name: string | null;
  /** The declared MIME type (documents only). */
  mimeType: string | null;
}

/** A message sent to the bot, reduced to what Postroom uses. */
export interface IncomingMessage {
  updateId: number;
  messageId: number;
  /** When Telegram received it. */
  date: Date;
  chat: ChatFacts;
  /** The sender (absent for anonymous group admins and channels). */
  from: { id: number; username: string | null } | null;
  text: string | null;
  caption: string | null;
  file: IncomingFile | null;
}

/** What an update asks of the bot. */
export type BotInput =
  | { kind: 'message'; message: IncomingMessage }
  /** The bot's membership in a chat changed (`kicked`: a user blocked it; `left`: removed from a group). */
  | { kind: 'membership'; updateId: number; chat: ChatFacts; status: string }
  /** A press of an inline button under one of the bot's messages. */
  | {
      kind: 'callback';
      updateId: number;
      /** To answer with answerCallbackQuery. */
      callbackId: string;
      /** The chat of the message the button is under (null when Telegram does not say). */
      chat: ChatFacts | null;
      /** The button's callback_data. */
      data: string;
    }
  | { kind: 'other'; updateId: number };

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const int = (v: unknown): number | null => (typeof v === 'number' && Number.isSafeInteger(v) ? v : null);

function chatOf(v: unknown): ChatFacts | null {
  if (!isObj(v)) return null;
  const id = int(v['id']);
  if (id === null) return null;
  return {
    chatId: String(id),
    type: str(v['type']) ?? 'private',
    title: str(v['title']),
    username: str(v['username']),
    firstName: str(v['first_name']),
    lastName: str(v['last_name']),
  };
}

function fileOf(message: Obj): IncomingFile | null {
  const doc = message['document'];
  if (isObj(doc) && str(doc['file_id'])) {
    return {
      kind: 'document',
      fileId: str(doc['file_id'])!,
      size: int(doc['file_size']),
      name: str(doc['file_name']),
      mimeType: str(doc['mime_type']),
    };
  }
  const photo = message['photo'];
  if (Array.isArray(photo) && photo.length > 0) {
    // Telegram lists the sizes of a photo smallest first: the last one is the original.
    const largest = photo[photo.length - 1] as unknown;
    if (isObj(largest) && str(largest['file_id']))
      return {
        kind: 'photo',
        fileId: str(largest['file_id'])!,
        size: int(largest['file_size']),
        name: null,
        mimeType: null,
      };
  }
  return null;
}

/**
 * Reads a Bot API Update defensively (it is Telegram's format, checked only for its id at the
 * webhook): private and group messages, inline button presses (`callback_query`), and changes of the
 * bot's own membership. Everything else (edited messages, channel posts) is `other`.
 */
export function readUpdate(update: Obj): BotInput {
  const updateId = int(update['update_id']) ?? 0;
  const message = update['message'];
  if (isObj(message)) {
    const chat = chatOf(message['chat']);
    const messageId = int(message['message_id']);
    if (chat && messageId !== null) {
      const from = isObj(message['from']) ? message['from'] : null;
      const fromId = from ? int(from['id']) : null;
      return {
        kind: 'message',
        message: {
          updateId,
          messageId,
          date: new Date((int(message['date']) ?? Math.floor(Date.now() / 1000)) * 1000),
          chat,
          from: from && fromId !== null ? { id: fromId, username: str(from['username']) } : null,
          text: str(message['text']),
          caption: str(message['caption']),
          file: fileOf(message),
        },
      };
    }
  }
  const callback = update['callback_query'];
  if (isObj(callback) && str(callback['id'])) {
    const msg = isObj(callback['message']) ? callback['message'] : null;
    return {
      kind: 'callback',
      updateId,
      callbackId: str(callback['id'])!,
      chat: msg ? chatOf(msg['chat']) : null,
      data: str(callback['data']) ?? '',
    };
  }
  const member = update['my_chat_member'];
  if (isObj(member)) {
    const chat = chatOf(member['chat']);
    const status = isObj(member['new_chat_member']) ? str(member['new_chat_member']['status']) : null;
    if (chat && status) return { kind: 'membership', updateId, chat, status };
  }
  return { kind: 'other', updateId };
}

/** A command in a message text: `/name`, `/name@bot`, then arguments. */
export interface Command {
  name: string;
  /** The bot named after `@`, lower case, or null. */
  addressee: string | null;
  args: string;
}

/** Parses `/status@postroom_bot abc` into its parts; null when the text is not a command. */
export function parseCommand(text: string): Command | null {
  const m = /^\/([A-Za-z0-9_]{1,64})(?:@([A-Za-z0-9_]{1,64}))?(?:\s+([\s\S]*))?$/.exec(text.trim());
  if (!m) return null;
  return { name: m[1]!.toLowerCase(), addressee: m[2]?.toLowerCase() ?? null, args: (m[3] ?? '').trim() };
}
