import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake Telegram Bot API server, written from the reference (https://core.telegram.org/bots/api):
 * `POST|GET <root>/bot<token>/<method>` with urlencoded, JSON or query parameters answering
 * `{ ok: true, result }` or `{ ok: false, error_code, description, parameters? }` with the HTTP status
 * of `error_code`; files at `GET <root>/file/bot<token>/<file_path>`. Methods: getMe, sendMessage
 * (HTML parse mode checked like Telegram does: only its tags, only `&lt; &gt; &amp; &quot;` and numeric
 * entities, balanced tags; 4096 characters at most; `reply_markup` inline keyboards with
 * `callback_data` of 1 to 64 bytes), sendDocument (a `multipart/form-data` upload, 50 MB at most,
 * or a file_id), answerCallbackQuery (only for a query the fake issued, once: a second answer or an
 * unknown id gets Telegram's "query is too old" 400), getFile (refuses files over 20 MB), setWebhook,
 * deleteWebhook. Failures can be scripted per method and chat.
 */

/** One API call the fake received. */
export interface FakeApiCall {
  method: string;
  params: Record<string, unknown>;
  /** Date.now() when it arrived. */
  at: number;
}

/** One message the bot sent. */
export interface FakeSentMessage {
  chatId: string;
  /** The text as sent (HTML source). */
  html: string;
  /** The text as a user sees it (tags removed, entities decoded). */
  text: string;
  parseMode: string | undefined;
  messageId: number;
  /** The message it answers, from reply_parameters. */
  replyTo: number | undefined;
  /** Inline keyboard rows under it, from reply_markup. */
  buttons: { text: string; callbackData: string }[][];
  at: number;
}

/** One document the bot sent. */
export interface FakeSentDocument {
  chatId: string;
  messageId: number;
  /** The multipart part's file name, or null when sent by file_id. */
  filename: string | null;
  contentType: string | null;
  /** The uploaded bytes (null when sent by file_id). */
  bytes: Buffer | null;
  /** Caption as a user sees it. */
  caption: string;
  replyTo: number | undefined;
  at: number;
}

/** A Bot API error. */
export interface FakeApiError {
  error_code: number;
  description: string;
  parameters?: { retry_after?: number; migrate_to_chat_id?: number };
}

/** A file the fake serves. */
export interface FakeFile {
  file_id: string;
  file_unique_id: string;
  file_size: number;
  file_path: string;
  /** The bytes (absent for files only declared, such as one too big to download). */
  bytes: Buffer | null;
}

const MAX_DOWNLOAD = 20 * 1024 * 1024;
const MAX_UPLOAD = 50 * 1000 * 1000;
const ALLOWED_TAGS = new Set([
  'b',
  'strong',
  'i',
  'em',
  'u',
  'ins',
  's',
  'strike',
  'del',
  'span',
  'tg-spoiler',
  'a',
  'tg-emoji',
  'code',
  'pre',
  'blockquote',
]);
const STRUCTURED = new Set([
  'reply_parameters',
  'link_preview_options',
  'allowed_updates',
  'reply_markup',
  'entities',
]);

/** Parses Telegram HTML into plain text, or says why Telegram would refuse it. */
export function parseTelegramHtml(html: string): { text: string } | { error: string } {
  const stack: string[] = [];
  let text = '';
  let i = 0;
  const offset = () => Buffer.byteLength(html.slice(0, i), 'utf8');
  while (i < html.length) {
    const c = html[i]!;
    if (c === '<') {
      const m = /^<(\/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:="[^"]*"|='[^']*')?)*)\s*>/.exec(
        html.slice(i),
      );
      if (!m)
        return { error: `can't parse entities: Unexpected end of name token at byte offset ${offset()}` };
      const tag = m[2]!.toLowerCase();
      if (!ALLOWED_TAGS.has(tag))
        return { error: `can't parse entities: Unsupported start tag "${tag}" at byte offset ${offset()}` };
      if (m[1]) {
        if (stack.pop() !== tag)
          return {
            error: `can't parse entities: Unmatched end tag at byte offset ${offset()}, expected "</${stack.at(-1) ?? ''}>", found "</${tag}>"`,
          };
      } else stack.push(tag);
      i += m[0].length;
      continue;
    }
    if (c === '&') {
      const m = /^&(lt|gt|amp|quot|#\d{1,7}|#x[0-9a-fA-F]{1,6});/.exec(html.slice(i));
      if (!m) return { error: `can't parse entities: Character entity expected at byte offset ${offset()}` };
      const name = m[1]!;
      text +=
        { lt: '<', gt: '>', amp: '&', quot: '"' }[name] ??
        String.fromCodePoint(name.startsWith('#x') ? parseInt(name.slice(2), 16) : Number(name.slice(1)));
      i += m[0].length;
      continue;
    }
    if (c === '>') return { error: `can't parse entities: Unexpected ">" at byte offset ${offset()}` };
    text += c;
    i += 1;
  }
  if (stack.length > 0)
    return { error: `can't parse entities: Can't find end tag corresponding to start tag "${stack.at(-1)}"` };
  return { text };
}

/** The fake server; `apiRoot` goes into TELEGRAM_API_URL. */
export class FakeTelegram {
  readonly calls: FakeApiCall[] = [];
  readonly sent: FakeSentMessage[] = [];
  readonly documents: FakeSentDocument[] = [];
  /** Callback queries answered: id, text and whether as an alert. */
  readonly answers: { id: string; text: string; alert: boolean }[] = [];
  private readonly openQueries = new Set<string>();
  private nextQuery = 1;
  readonly downloads: { path: string; status: number; at: number }[] = [];
  webhook: { url: string; secret_token?: string; allowed_updates?: unknown } | null = null;
  private readonly files = new Map<string, FakeFile>();
  private readonly scripted: { method: string; chatId: string | null; error: FakeApiError; times: number }[] =
    [];
  private readonly blocked = new Set<string>();
  private downloadFailures: { times: number; status: number } = { times: 0, status: 500 };
  private nextMessageId = 1;
  private nextFile = 1;
  private server: Server | null = null;
  apiRoot = '';

  constructor(
    readonly token: string,
    readonly botUsername = 'postroom_test_bot',
  ) {}

  /** The bot's id: the digits of the token before `:`. */
  get botId(): number {
    return Number(this.token.split(':')[0]);
  }

  /** Listens on 127.0.0.1 on a free port. */
  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(JSON.stringify({ ok: false, error_code: 500, description: `fake failed: ${String(err)}` }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.apiRoot = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Fails the next `times` calls of `method` (to `chatId` only, when given) with `error`. */
  failNext(
    method: string,
    error: FakeApiError,
    opts: { chatId?: string | number; times?: number } = {},
  ): void {
    this.scripted.push({
      method,
      chatId: opts.chatId === undefined ? null : String(opts.chatId),
      error,
      times: opts.times ?? 1,
    });
  }

  /** Makes every sendMessage to `chatId` fail with 403 "bot was blocked by the user". */
  block(chatId: string | number): void {
    this.blocked.add(String(chatId));
  }

  /** Makes the next `times` downloads answer `status`. */
  failDownloads(times: number, status = 500): void {
    this.downloadFailures = { times, status };
  }

  /** Registers a file; `bytes` or, for a file only declared (too big), `size`. */
  addFile(opts: { bytes?: Buffer; size?: number; ext?: string; dir?: string }): FakeFile {
    const n = this.nextFile++;
    const size = opts.bytes?.length ?? opts.size ?? 0;
    const file: FakeFile = {
      file_id: `BQACAgQAAxkBAAI${n}fileid${n.toString().padStart(6, '0')}`,
      file_unique_id: `AgAD${n}uniq`,
      file_size: size,
      file_path: `${opts.dir ?? 'documents'}/file_${n}.${opts.ext ?? 'bin'}`,
      bytes: opts.bytes ?? null,
    };
    this.files.set(file.file_id, file);
    return file;
  }

  /** A fresh callback_query id, as Telegram issues one per button press (answerable once). */
  newCallbackQueryId(): string {
    const id = `${this.botId}${String(this.nextQuery++).padStart(8, '0')}`;
    this.openQueries.add(id);
    return id;
  }

  /** Documents sent to one chat, in order. */
  documentsTo(chatId: string | number): FakeSentDocument[] {
    return this.documents.filter((d) => d.chatId === String(chatId));
  }

  /** Messages sent to one chat, in order. */
  messagesTo(chatId: string | number): FakeSentMessage[] {
    return this.sent.filter((m) => m.chatId === String(chatId));
  }

  /** Calls of one method. */
  callsOf(method: string): FakeApiCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const fail = (e: FakeApiError) => send(e.error_code, { ok: false, ...e });

    const file = /^\/file\/bot([^/]+)\/(.+)$/.exec(url.pathname);
    if (file) {
      const path = decodeURIComponent(file[2]!);
      const found = [...this.files.values()].find((f) => f.file_path === path);
      let status = file[1] === this.token && found?.bytes ? 200 : 404;
      if (status === 200 && this.downloadFailures.times > 0) {
        this.downloadFailures.times -= 1;
        status = this.downloadFailures.status;
      }
      this.downloads.push({ path, status, at: Date.now() });
      if (status !== 200)
        return fail({
          error_code: status,
          description: status === 404 ? 'Not Found' : 'Internal Server Error',
        });
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(found!.bytes!.length),
      });
      res.end(found!.bytes);
      return;
    }

    const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
    if (!m) return fail({ error_code: 404, description: 'Not Found' });
    if (m[1] !== this.token) return fail({ error_code: 401, description: 'Unauthorized' });
    const method = m[2]!;
    const params = await readParams(req, url);
    this.calls.push({ method, params, at: Date.now() });
    const chatId = params['chat_id'] === undefined ? null : String(params['chat_id']);

    const i = this.scripted.findIndex(
      (s) => s.method === method && (s.chatId === null || s.chatId === chatId),
    );
    if (i >= 0) {
      const s = this.scripted[i]!;
      s.times -= 1;
      if (s.times <= 0) this.scripted.splice(i, 1);
      return fail(s.error);
    }

    switch (method) {
      case 'getMe':
        return send(200, { ok: true, result: this.me() });
      case 'setWebhook': {
        const hook = String(params['url'] ?? '');
        if (!hook.startsWith('https://'))
          return fail({
            error_code: 400,
            description: 'Bad Request: bad webhook: An HTTPS URL must be provided for webhook',
          });
        const secret = params['secret_token'];
        if (secret !== undefined && !/^[A-Za-z0-9_-]{1,256}$/.test(String(secret)))
          return fail({
            error_code: 400,
            description: 'Bad Request: secret token contains unallowed characters',
          });
        this.webhook = {
          url: hook,
          secret_token: secret === undefined ? undefined : String(secret),
          allowed_updates: params['allowed_updates'],
        };
        return send(200, { ok: true, result: true, description: 'Webhook was set' });
      }
      case 'deleteWebhook':
        this.webhook = null;
        return send(200, { ok: true, result: true, description: 'Webhook was deleted' });
      case 'getFile': {
        const f = this.files.get(String(params['file_id'] ?? ''));
        if (!f) return fail({ error_code: 400, description: 'Bad Request: invalid file_id' });
        if (f.file_size > MAX_DOWNLOAD)
          return fail({ error_code: 400, description: 'Bad Request: file is too big' });
        return send(200, {
          ok: true,
          result: {
            file_id: f.file_id,
            file_unique_id: f.file_unique_id,
            file_size: f.file_size,
            file_path: f.file_path,
          },
        });
      }
      case 'sendMessage':
        return this.sendMessage(params, chatId, send, fail);
      case 'sendDocument':
        return this.sendDocument(params, chatId, send, fail);
      case 'answerCallbackQuery': {
        const id = String(params['callback_query_id'] ?? '');
        if (!this.openQueries.delete(id))
          return fail({
            error_code: 400,
            description: 'Bad Request: query is too old and response timeout expired or query ID is invalid',
          });
        const text = params['text'] === undefined ? '' : String(params['text']);
        if (text.length > 200) return fail({ error_code: 400, description: 'Bad Request: MESSAGE_TOO_LONG' });
        this.answers.push({
          id,
          text,
          alert: params['show_alert'] === true || params['show_alert'] === 'true',
        });
        return send(200, { ok: true, result: true });
      }
      default:
        return fail({ error_code: 404, description: 'Not Found' });
    }
  }

  private sendMessage(
    params: Record<string, unknown>,
    chatId: string | null,
    send: (status: number, body: unknown) => void,
    fail: (e: FakeApiError) => void,
  ): void {
    if (chatId === null || !/^-?\d+$/.test(chatId))
      return fail({ error_code: 400, description: 'Bad Request: chat not found' });
    if (this.blocked.has(chatId))
      return fail({ error_code: 403, description: 'Forbidden: bot was blocked by the user' });
    const html = String(params['text'] ?? '');
    const parseMode = params['parse_mode'] === undefined ? undefined : String(params['parse_mode']);
    let text = html;
    if (parseMode === 'HTML') {
      const parsed = parseTelegramHtml(html);
      if ('error' in parsed) return fail({ error_code: 400, description: `Bad Request: ${parsed.error}` });
      text = parsed.text;
    }
    if (text.trim() === '')
      return fail({ error_code: 400, description: 'Bad Request: message text is empty' });
    if (text.length > 4096) return fail({ error_code: 400, description: 'Bad Request: message is too long' });
    const reply = params['reply_parameters'] as { message_id?: number } | undefined;
    const buttons = readKeyboard(params['reply_markup']);
    if ('error' in buttons) return fail({ error_code: 400, description: buttons.error });
    const message = {
      chatId,
      html,
      text,
      parseMode,
      messageId: this.nextMessageId++,
      replyTo: reply?.message_id,
      buttons: buttons.rows,
      at: Date.now(),
    };
    this.sent.push(message);
    send(200, {
      ok: true,
      result: {
        message_id: message.messageId,
        from: this.me(),
        chat: { id: Number(chatId), type: chatId.startsWith('-') ? 'group' : 'private' },
        date: Math.floor(message.at / 1000),
        text,
      },
    });
  }

  private sendDocument(
    params: Record<string, unknown>,
    chatId: string | null,
    send: (status: number, body: unknown) => void,
    fail: (e: FakeApiError) => void,
  ): void {
    if (chatId === null || !/^-?\d+$/.test(chatId))
      return fail({ error_code: 400, description: 'Bad Request: chat not found' });
    if (this.blocked.has(chatId))
      return fail({ error_code: 403, description: 'Forbidden: bot was blocked by the user' });
    const doc = params['document'];
    const upload = doc instanceof UploadedPart ? doc : null;
    if (!upload && (typeof doc !== 'string' || doc === ''))
      return fail({ error_code: 400, description: 'Bad Request: there is no document in the request' });
    if (upload && upload.bytes.length > MAX_UPLOAD)
      return fail({ error_code: 413, description: 'Request Entity Too Large' });
    const buttons = readKeyboard(params['reply_markup']);
    if ('error' in buttons) return fail({ error_code: 400, description: buttons.error });
    let caption = params['caption'] === undefined ? '' : String(params['caption']);
    if (params['parse_mode'] === 'HTML') {
      const parsed = parseTelegramHtml(caption);
      if ('error' in parsed) return fail({ error_code: 400, description: `Bad Request: ${parsed.error}` });
      caption = parsed.text;
    }
    if (caption.length > 1024)
      return fail({ error_code: 400, description: 'Bad Request: message caption is too long' });
    const reply = params['reply_parameters'] as { message_id?: number } | undefined;
    const d: FakeSentDocument = {
      chatId,
      messageId: this.nextMessageId++,
      filename: upload?.filename ?? null,
      contentType: upload?.contentType ?? null,
      bytes: upload?.bytes ?? null,
      caption,
      replyTo: reply?.message_id,
      at: Date.now(),
    };
    this.documents.push(d);
    send(200, {
      ok: true,
      result: {
        message_id: d.messageId,
        from: this.me(),
        chat: { id: Number(chatId), type: chatId.startsWith('-') ? 'group' : 'private' },
        date: Math.floor(d.at / 1000),
        document: {
          file_id: `BQACAgQAAxkDocument${d.messageId}`,
          file_unique_id: `AgADdoc${d.messageId}`,
          file_name: d.filename ?? undefined,
          mime_type: d.contentType ?? undefined,
          file_size: d.bytes?.length,
        },
        ...(d.caption ? { caption: d.caption } : {}),
      },
    });
  }

  private me() {
    return {
      id: this.botId,
      is_bot: true,
      first_name: 'Postroom test',
      username: this.botUsername,
      can_join_groups: true,
    };
  }
}

/** A file part of a multipart/form-data request. */
class UploadedPart {
  constructor(
    readonly filename: string | null,
    readonly contentType: string | null,
    readonly bytes: Buffer,
  ) {}
}

/** Reads `reply_markup.inline_keyboard` as Telegram checks it (callback_data of 1 to 64 bytes). */
function readKeyboard(
  markup: unknown,
): { rows: { text: string; callbackData: string }[][] } | { error: string } {
  if (markup === undefined) return { rows: [] };
  const kb = (markup as { inline_keyboard?: unknown }).inline_keyboard;
  if (!Array.isArray(kb)) return { rows: [] };
  const rows: { text: string; callbackData: string }[][] = [];
  for (const row of kb) {
    if (!Array.isArray(row))
      return {
        error:
          'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays',
      };
    rows.push(
      (row as { text?: unknown; callback_data?: unknown }[]).map((b) => ({
        text: String(b.text ?? ''),
        callbackData: String(b.callback_data ?? ''),
      })),
    );
  }
  for (const b of rows.flat()) {
    if (b.text === '') return { error: 'Bad Request: text buttons are unallowed in the inline keyboard' };
    const n = Buffer.byteLength(b.callbackData);
    if (n < 1 || n > 64) return { error: 'Bad Request: BUTTON_DATA_INVALID' };
  }
  return { rows };
}

async function readParams(req: IncomingMessage, url: URL): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  const raw = body.toString('utf8');
  const type = req.headers['content-type'] ?? '';
  let params: Record<string, unknown> = Object.fromEntries(url.searchParams);
  if (type.includes('multipart/form-data')) {
    // Parsed by the platform's own multipart reader (undici), as a server framework would.
    const form = await new Request('http://fake/', {
      method: 'POST',
      headers: { 'content-type': type },
      body,
    }).formData();
    for (const [key, value] of form.entries())
      params[key] =
        typeof value === 'string'
          ? value
          : new UploadedPart(value.name || null, value.type || null, Buffer.from(await value.arrayBuffer()));
  } else if (type.includes('application/json') && raw)
    params = { ...params, ...(JSON.parse(raw) as Record<string, unknown>) };
  else if (type.includes('application/x-www-form-urlencoded'))
    params = { ...params, ...Object.fromEntries(new URLSearchParams(raw)) };
  else if (raw) throw new Error(`unsupported content type ${type}`);
  // Structured fields travel as JSON strings in a form (as every client sends them).
  for (const key of STRUCTURED)
    if (typeof params[key] === 'string') params[key] = JSON.parse(params[key] as string) as unknown;
  return params;
}
