import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import {
  Api,
  InputFile,
  NetworkError,
  ParseError,
  TelegramApiError,
  TimeoutError,
} from 'node-telegram-bot-api';
import type { File, Message, SetWebhookParams, User } from 'node-telegram-bot-api';
import type { Config } from '../config.js';
import { PermanentError, PostroomError, RetryableError } from '../errors.js';
import type { Logger } from '../logger.js';
import { createRateLimiter, type TelegramRateLimiter } from './rate-limiter.js';
import { redactToken, scrubError } from './redact.js';
import { telegramApiCallsTotal } from './telegram-metrics.js';

/** Largest file the Bot API lets a bot download (`getFile` refuses bigger ones): 20 MB. */
export const BOT_API_DOWNLOAD_MAX_BYTES = 20 * 1024 * 1024;

/** Options of {@link createTelegramClient}. */
export interface TelegramClientOptions {
  /** `TELEGRAM_BOT_TOKEN`; never logged, never put in an error message. */
  token: string;
  /** `TELEGRAM_API_URL` (Telegram's, a local Bot API server, or a test fake). */
  apiRoot: string;
  log: Logger;
  /** Sending limits; default: one limiter per bot shared by every client of this process. */
  limiter?: TelegramRateLimiter;
  /** Timeout of one API call in ms (default 30 000). */
  timeoutMs?: number;
  /** Timeout of one file download in ms, body included (default 120 000). */
  downloadTimeoutMs?: number;
  /** A 429 asking to wait at most this long (ms) is waited out in-process; a longer one is thrown (default 5 000). */
  maxInProcessWaitMs?: number;
}

/**
 * The client a Telegram role uses, from `TELEGRAM_BOT_TOKEN` and `TELEGRAM_API_URL`; null when no token
 * is set, after one line in `log` saying that `what` is off (the roles start anyway, doing nothing).
 */
export function configuredTelegramClient(
  config: Pick<Config, 'TELEGRAM_BOT_TOKEN' | 'TELEGRAM_API_URL'>,
  log: Logger,
  what: string,
  options: Partial<Omit<TelegramClientOptions, 'token' | 'apiRoot' | 'log'>> = {},
): TelegramClient | null {
  const token = config.TELEGRAM_BOT_TOKEN;
  if (!token) {
    log.info(`TELEGRAM_BOT_TOKEN is not set; ${what} off`);
    return null;
  }
  return createTelegramClient({ token, apiRoot: config.TELEGRAM_API_URL, log, ...options });
}

/** Largest file a bot may send (`sendDocument` by upload): 50 MB. */
export const BOT_API_UPLOAD_MAX_BYTES = 50 * 1000 * 1000;

/** A button under a message that sends `callbackData` (at most 64 bytes) back as a `callback_query`. */
export interface InlineButton {
  text: string;
  callbackData: string;
}

/** Options of one message. */
export interface SendOptions {
  /** Answer this message of the chat (shown as a reply; sent anyway when it is gone). */
  replyTo?: number;
  /** Rows of inline buttons under the message. */
  buttons?: InlineButton[][];
}

/** A file to send as a document: streamed from `open`, never held whole. */
export interface OutgoingDocument {
  /** File name the chat shows. */
  filename: string;
  /** MIME type of the part. */
  contentType: string;
  /** Opens the bytes (called once: the client makes one attempt). */
  open: () => Promise<Readable>;
}

/**
 * The Bot API calls Postroom makes, with its limits and its error handling: every failure is a
 * `RetryableError` or a `PermanentError` with a `TELEGRAM.*` code (`TELEGRAM.RATE_LIMITED` with
 * `retryAfterMs`, `TELEGRAM.FORBIDDEN` when the chat blocked the bot, `TELEGRAM.BAD_REQUEST` ...),
 * `details.errorCode` and `details.description` as Telegram sent them, and no bot token anywhere.
 */
export interface TelegramClient {
  /** The bot's id: the digits before `:` in its token (0 when the token has another form). */
  readonly botId: number;
  /** Sends an HTML-formatted message (callers escape with `escapeHtml`) within the rate limits. */
  sendMessage(chatId: string, html: string, options?: SendOptions): Promise<Message>;
  /** Uploads a file as a document (multipart), with an HTML caption, within the rate limits. */
  sendDocument(
    chatId: string,
    document: OutgoingDocument,
    options?: SendOptions & { captionHtml?: string },
  ): Promise<Message>;
  /** Answers a `callback_query` (stops the button's spinner); `text` shows as a toast, or an alert. */
  answerCallbackQuery(callbackQueryId: string, text?: string, alert?: boolean): Promise<void>;
  /** Prepares a file for download (`file_path`); refuses files over 20 MB with `TELEGRAM.BAD_REQUEST`. */
  getFile(fileId: string): Promise<File>;
  /** Streams a file `getFile` prepared; the caller consumes or destroys the stream. */
  download(filePath: string): Promise<Readable>;
  /** Registers the webhook. */
  setWebhook(params: SetWebhookParams): Promise<void>;
  /** The bot itself. */
  getMe(): Promise<User>;
}

const limiters = new Map<number, TelegramRateLimiter>();

/** The limiter every client of bot `botId` in this process shares (the limits are per bot). */
function sharedRateLimiter(botId: number): TelegramRateLimiter {
  let limiter = limiters.get(botId);
  if (!limiter) {
    limiter = createRateLimiter();
    limiters.set(botId, limiter);
  }
  return limiter;
}

/** The bot id of a token: the digits before `:` (0 when the token has another form). */
function botIdOf(token: string): number {
  const m = /^(\d{1,18}):/.exec(token);
  return m ? Number(m[1]) : 0;
}

/** The Bot API error code of a translated error (403, 429 ...), or undefined for transport failures. */
export function telegramErrorCode(err: unknown): number | undefined {
  const code = err instanceof PostroomError ? err.details?.['errorCode'] : undefined;
  return typeof code === 'number' ? code : undefined;
}

/** The Bot API description of a translated error (`Bad Request: file is too big`), or ''. */
export function telegramErrorDescription(err: unknown): string {
  const d = err instanceof PostroomError ? err.details?.['description'] : undefined;
  return typeof d === 'string' ? d : '';
}

function outcomeOf(errorCode: number): string {
  if (errorCode === 429) return 'rate_limited';
  if (errorCode === 403) return 'forbidden';
  return errorCode >= 500 ? 'server_error' : 'client_error';
}

/** Creates the client; the token stays inside it. */
export function createTelegramClient(opts: TelegramClientOptions): TelegramClient {
  const { token } = opts;
  const botId = botIdOf(token);
  const apiRoot = opts.apiRoot.replace(/\/+$/, '');
  const limiter = opts.limiter ?? sharedRateLimiter(botId);
  const maxWait = opts.maxInProcessWaitMs ?? 5_000;
  const log = opts.log.child({ module: 'telegram-client' });
  // The library's own retries are off: a sendMessage retried after a timeout may be a second message,
  // and 429s and outages are better retried through the broker's delay tiers than by a blocked handler.
  const api = new Api(token, { apiRoot, maxRetries: 0, timeoutMs: opts.timeoutMs ?? 30_000 });

  /** Translates a library error into ours, with no token in it. */
  const translate = (method: string, err: unknown): PostroomError => {
    const cause = scrubError(err, token);
    if (err instanceof TelegramApiError) {
      const description = redactToken(err.description ?? '', token);
      const details = { method, errorCode: err.errorCode, description };
      const message = `Bot API ${method} answered ${err.errorCode}: ${description}`;
      telegramApiCallsTotal.inc({ method, outcome: outcomeOf(err.errorCode) });
      if (err.errorCode === 429) {
        const retryAfterMs = Math.max(1, err.retryAfter ?? 1) * 1000;
        return new RetryableError('TELEGRAM.RATE_LIMITED', message, { cause, details, retryAfterMs });
      }
      if (err.errorCode === 403) return new PermanentError('TELEGRAM.FORBIDDEN', message, { cause, details });
      if (err.errorCode === 400)
        return new PermanentError('TELEGRAM.BAD_REQUEST', message, { cause, details });
      // 401 and 404: a wrong token or API root; retried (and parked in the end) so a fix can replay them.
      if (err.errorCode === 401 || err.errorCode === 404 || err.errorCode >= 500)
        return new RetryableError(
          err.errorCode >= 500 ? 'TELEGRAM.UNAVAILABLE' : 'TELEGRAM.UNAUTHORIZED',
          message,
          {
            cause,
            details,
          },
        );
      return new PermanentError('TELEGRAM.REJECTED', message, { cause, details });
    }
    telegramApiCallsTotal.inc({ method, outcome: 'network' });
    if (err instanceof TimeoutError)
      return new RetryableError('TELEGRAM.TIMEOUT', `Bot API ${method} timed out`, {
        cause,
        details: { method },
      });
    if (err instanceof ParseError)
      return new RetryableError(
        'TELEGRAM.BAD_RESPONSE',
        `Bot API ${method} answered with something other than JSON`,
        {
          cause,
          details: { method },
        },
      );
    const what = err instanceof NetworkError ? 'could not be reached' : 'failed';
    return new RetryableError('TELEGRAM.NETWORK', `Bot API ${method} ${what}: ${cause.message}`, {
      cause,
      details: { method },
    });
  };

  /** One call; with a chat, within its limits, and short 429 waits taken here. */
  const call = async <R>(method: string, chatId: string | null, fn: () => Promise<R>): Promise<R> => {
    for (let attempt = 1; ; attempt++) {
      if (chatId !== null) await limiter.acquire(chatId);
      try {
        const result = await fn();
        telegramApiCallsTotal.inc({ method, outcome: 'ok' });
        return result;
      } catch (err) {
        const e = translate(method, err);
        if (e instanceof RetryableError && e.code === 'TELEGRAM.RATE_LIMITED') {
          const waitMs = e.retryAfterMs ?? 1000;
          if (chatId !== null) limiter.backOff(chatId, waitMs);
          log.warn({ method, chatId, retryAfterMs: waitMs, attempt }, 'Telegram asked to slow down (429)');
          if (waitMs <= maxWait && attempt < 3) {
            if (chatId === null) await new Promise((r) => setTimeout(r, waitMs));
            continue;
          }
        }
        throw e;
      }
    }
  };

  const extras = (options: SendOptions) => ({
    ...(options.replyTo === undefined
      ? {}
      : { reply_parameters: { message_id: options.replyTo, allow_sending_without_reply: true } }),
    ...(options.buttons?.length
      ? {
          reply_markup: {
            inline_keyboard: options.buttons.map((row) =>
              row.map((b) => ({ text: b.text, callback_data: b.callbackData })),
            ),
          },
        }
      : {}),
  });

  return {
    botId,
    sendMessage: (chatId, html, options = {}) =>
      call('sendMessage', chatId, () =>
        api.sendMessage({
          chat_id: chatId,
          text: html,
          parse_mode: 'HTML',
          link_preview_options: { is_disabled: true },
          ...extras(options),
        }),
      ),
    sendDocument: (chatId, document, options = {}) =>
      call('sendDocument', chatId, async () => {
        // A stream factory: the library streams the part into the request body.
        const file = new InputFile(
          async () => Readable.toWeb(await document.open()) as unknown as ReadableStream<Uint8Array>,
          { filename: document.filename, contentType: document.contentType },
        );
        return api.sendDocument({
          chat_id: chatId,
          document: file,
          ...(options.captionHtml ? { caption: options.captionHtml, parse_mode: 'HTML' } : {}),
          ...extras(options),
        });
      }),
    answerCallbackQuery: async (callbackQueryId, text, alert) => {
      await call('answerCallbackQuery', null, () =>
        api.answerCallbackQuery({
          callback_query_id: callbackQueryId,
          ...(text ? { text: text.slice(0, 200), show_alert: alert === true } : {}),
        }),
      );
    },
    getFile: (fileId) => call('getFile', null, () => api.getFile({ file_id: fileId })),
    getMe: () => call('getMe', null, () => api.getMe()),
    setWebhook: async (params) => {
      await call('setWebhook', null, () => api.setWebhook(params));
    },
    async download(filePath) {
      // file_path comes from Telegram; a path that climbs out of the bot's file area is refused.
      const segments = filePath.split('/');
      if (filePath.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..'))
        throw new PermanentError(
          'TELEGRAM.BAD_FILE_PATH',
          `Telegram gave an unusable file path (${segments.length} parts)`,
        );
      const url = `${apiRoot}/file/bot${token}/${segments.map(encodeURIComponent).join('/')}`;
      let res: Response;
      try {
        res = await fetch(url, { signal: AbortSignal.timeout(opts.downloadTimeoutMs ?? 120_000) });
      } catch (err) {
        telegramApiCallsTotal.inc({ method: 'download', outcome: 'network' });
        const cause = scrubError(err, token);
        throw new RetryableError(
          'TELEGRAM.DOWNLOAD_FAILED',
          `Downloading a Telegram file failed: ${cause.message}`,
          {
            cause,
          },
        );
      }
      if (!res.ok || !res.body) {
        await res.body?.cancel().catch(() => undefined);
        telegramApiCallsTotal.inc({ method: 'download', outcome: outcomeOf(res.status) });
        // Even a 404 is retried: a file path expires after an hour, and the retry asks getFile again.
        throw new RetryableError(
          'TELEGRAM.DOWNLOAD_FAILED',
          `Downloading a Telegram file answered HTTP ${res.status}`,
          {
            details: { status: res.status },
          },
        );
      }
      telegramApiCallsTotal.inc({ method: 'download', outcome: 'ok' });
      return Readable.fromWeb(res.body as WebReadableStream<Uint8Array>);
    },
  };
}
