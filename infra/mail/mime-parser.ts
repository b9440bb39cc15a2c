import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, pipeline as pipe, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  MailParser,
  type AddressObject,
  type AttachmentStream,
  type EmailAddress,
  type HeaderLines,
  type Headers,
  type MailParserOptions,
  type MessageText,
  type StructuredHeader,
} from 'mailparser';
import type { BlobStore } from '../blobs/blob-store.js';
import { PermanentError, PostroomError, RetryableError } from '../errors.js';
import { safeFilename } from '../safe-filename.js';
import { MimeInspector, type SplitterChunk } from './mime-inspector.js';
import type { ParsedAttachment, ParsedEmail } from './parsed-email.js';
import { UudecodeStream, UUENCODINGS } from './uudecode.js';

/** What the parser needs from outside. */
export interface MimeParserDeps {
  /** Where attachment bytes go, by SHA-256. */
  blobs: BlobStore;
}

/** Size limits, in bytes. */
export interface MimeParserLimits {
  /** Largest attachment whose bytes are kept (ATTACHMENT_MAX_BYTES); larger ones are hashed, counted, not stored. */
  attachmentMaxBytes: number;
  /** Largest raw message read at all; a larger one is refused with `MAIL.TOO_LARGE`. */
  messageMaxBytes: number;
}

/** Forwarded messages nested deeper than this are stored as attachments but not opened. */
export const MAX_FORWARD_DEPTH = 8;
/** Domain of the Message-ID made up for a message that has none. */
const SYNTHETIC_ID_DOMAIN = 'postroom.invalid';

const PARSER_OPTIONS: MailParserOptions = {
  // message/rfc822 parts come out as attachments: they are stored whole and parsed again below.
  ignoreEmbedded: true,
  // We hash with SHA-256 ourselves, as the bytes stream.
  checksumAlgo: false,
  // Bodies are not used here: skip the costly conversions.
  skipHtmlToText: true,
  skipTextToHtml: true,
  skipTextLinks: true,
  skipImageLinks: true,
};

const EXTENSIONS: Record<string, string> = {
  'application/pdf': 'pdf',
  'application/zip': 'zip',
  'application/gzip': 'gz',
  'application/json': 'json',
  'application/xml': 'xml',
  'application/msword': 'doc',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'pptx',
  'application/vnd.ms-excel': 'xls',
  'application/pkcs7-signature': 'p7s',
  'application/pgp-signature': 'asc',
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/gif': 'gif',
  'image/webp': 'webp',
  'image/heic': 'heic',
  'image/tiff': 'tif',
  'image/bmp': 'bmp',
  'image/svg+xml': 'svg',
  'text/plain': 'txt',
  'text/html': 'html',
  'text/csv': 'csv',
  'text/calendar': 'ics',
  'text/vcard': 'vcf',
  'audio/mpeg': 'mp3',
  'video/mp4': 'mp4',
  'message/rfc822': 'eml',
  'message/delivery-status': 'txt',
};

const MIME_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*$/;

/** Extension for a fallback name: `pdf` for application/pdf, `bin` when the type says nothing. */
function extensionFor(type: string): string {
  return EXTENSIONS[type] ?? 'bin';
}

const noop = () => undefined;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * A writable end handed to a consumer (the blob store, a nested parser) that may finish or fail on its
 * own. `write` honours back-pressure but never waits on a consumer that has stopped; `result` is what
 * the consumer returned or threw.
 */
class Feed<T> {
  readonly input = new PassThrough();
  readonly result: Promise<T>;
  /** Resolves (never rejects) once the consumer has finished either way. */
  readonly settled: Promise<void>;
  private finished = false;

  constructor(consumer: (input: Readable) => Promise<T>) {
    // The consumer sees the stream's error; this only keeps it from being an uncaught 'error' event.
    this.input.on('error', noop);
    this.result = consumer(this.input);
    this.settled = this.result.then(
      () => void (this.finished = true),
      () => void (this.finished = true),
    );
  }

  /** False once the consumer has returned or thrown. */
  get alive(): boolean {
    return !this.finished && !this.input.destroyed;
  }

  async write(chunk: Buffer): Promise<void> {
    if (!this.alive) return;
    if (this.input.write(chunk)) return;
    await Promise.race([once(this.input, 'drain').catch(noop), this.settled]);
  }

  end(): void {
    if (this.alive) this.input.end();
  }

  abort(reason: Error): void {
    if (!this.input.destroyed) this.input.destroy(reason);
  }
}

class OversizeSignal extends Error {
  constructor() {
    super('attachment over the size limit: bytes not kept');
  }
}

/** Shared state of one parse: the list every level appends to. */
interface ParseContext {
  blobs: BlobStore;
  attachmentMaxBytes: number;
  attachments: ParsedAttachment[];
  /** Records whose bytes were fully read; others are dropped when a parse level fails midway. */
  complete: WeakSet<ParsedAttachment>;
}

/**
 * What one level (the message, or a forwarded message inside it) yields besides attachments. Filled in
 * as soon as the headers are read, so a level that fails later still has them.
 */
interface LevelResult {
  messageId: string;
  subject: string;
  from: string;
  date: Date | null;
  warnings: string[];
}

function emptyLevel(): LevelResult {
  return { messageId: '', subject: '', from: '', date: null, warnings: [] };
}

/** Turns a blob store failure into a typed error; our own typed errors pass through. */
function storeFailure(err: unknown): PostroomError {
  if (err instanceof PostroomError) return err;
  return new RetryableError('MAIL.BLOB_WRITE_FAILED', `Storing an attachment failed: ${message(err)}`, {
    cause: err,
  });
}

/**
 * Reads one attachment's decoded bytes: hashes and counts all of them, stores them in the blob store
 * while they stay within the limit, and copies them to `tap` (a nested parser) when given.
 */
async function consume(
  content: Readable,
  ctx: ParseContext,
  tap?: Feed<unknown>,
): Promise<{ size: number; sha256: string; stored: boolean }> {
  const hash = createHash('sha256');
  let size = 0;
  let keeping = true;
  const blob = new Feed((input) => ctx.blobs.put(input, { maxBytes: ctx.attachmentMaxBytes }));
  try {
    for await (const raw of content as AsyncIterable<Buffer | string>) {
      const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
      hash.update(chunk);
      size += chunk.length;
      if (keeping && size > ctx.attachmentMaxBytes) {
        // Keep hashing and counting; the store drops what it has written so far.
        keeping = false;
        blob.abort(new OversizeSignal());
      }
      // The store failed while the bytes were still coming: stop now.
      if (keeping && !blob.alive) await blob.result.catch((e: unknown) => Promise.reject(storeFailure(e)));
      await Promise.all([keeping ? blob.write(chunk) : undefined, tap?.write(chunk)]);
    }
  } catch (err) {
    const reason = err instanceof Error ? err : new Error(String(err));
    blob.abort(reason);
    tap?.abort(reason);
    // Nothing this attachment started (its blob write, a nested parse and its writes) may outlive it.
    await Promise.all([blob.settled, tap?.settled]);
    throw err;
  }
  tap?.end();
  const sha256 = hash.digest('hex');
  if (!keeping) {
    await blob.settled; // the temporary chunks are gone once it has settled
    return { size, sha256, stored: false };
  }
  blob.end();
  try {
    const info = await blob.result;
    if (info.sha256 !== sha256 || info.size !== size)
      throw new Error(
        `the store hashed ${info.size} bytes to ${info.sha256}, the parser ${size} to ${sha256}`,
      );
  } catch (err) {
    throw storeFailure(err);
  }
  return { size, sha256, stored: true };
}

/** The first mailbox of an address header, groups opened, lower case. */
function firstAddress(value: unknown): string {
  const list = (value as AddressObject | undefined)?.value ?? [];
  const walk = (entries: EmailAddress[]): string => {
    for (const e of entries) {
      if (e.address) return e.address.trim().toLowerCase();
      if (e.group) {
        const inner = walk(e.group);
        if (inner) return inner;
      }
    }
    return '';
  };
  return walk(list);
}

/** The Date header read strictly: null when missing or unreadable (mailparser would say "now"). */
function readDate(lines: HeaderLines, warnings: string[]): Date | null {
  const line = lines.find((l) => l.key === 'date')?.line;
  if (line === undefined) return null;
  const raw = line
    .slice(line.indexOf(':') + 1)
    .replace(/\r?\n[ \t]+/g, ' ')
    .trim();
  const d = new Date(raw);
  if (Number.isNaN(d.getTime())) {
    warnings.push(`unreadable Date header "${raw.slice(0, 100)}"`);
    return null;
  }
  return d;
}

/** Content-IDs referenced as `cid:` URLs in the HTML. */
function referencedCids(html: string): Set<string> {
  const out = new Set<string>();
  for (const m of html.matchAll(/\bcid:([^'"\s>)]{1,256})/gi)) {
    const cid = m[1]!;
    out.add(cid);
    try {
      out.add(decodeURIComponent(cid));
    } catch {
      // a malformed %-escape: the raw form is all there is
    }
  }
  return out;
}

/** Wires the inspector into mailparser's internal chunk handler (the splitter's output). */
function inspect(parser: MailParser, inspector: MimeInspector): void {
  const internal = parser as unknown as {
    processChunk?: (data: SplitterChunk, done: (err?: Error) => void) => void;
  };
  const original = internal.processChunk;
  // mailparser 3.x hands every splitter chunk to processChunk, a private method: package.json pins
  // mailparser to one exact version for that reason (mime-parser.test.ts checks both). If it ever
  // changes, parsing goes on without structural warnings (the tests that expect warnings will say so).
  if (typeof original !== 'function') return;
  internal.processChunk = (data, done) => {
    inspector.observe(data);
    // A text file attached as `inline` with a name (Apple Mail does this) would otherwise be merged into
    // the body text and never seen as a file. HTML stays body: it is where inline images are referenced.
    if (
      data.type === 'node' &&
      !data.root &&
      !data.multipart &&
      data.disposition === 'inline' &&
      data.filename &&
      typeof data.contentType === 'string' &&
      data.contentType.startsWith('text/') &&
      data.contentType !== 'text/html'
    )
      data.disposition = 'attachment';
    original.call(parser, data, done);
  };
}

/**
 * Parses one message level from `input`: every attachment goes to the blob store and into
 * `ctx.attachments` (with `parentId`), forwarded messages are parsed again at the next level.
 * Rejects with a PostroomError when the blob store fails, with another error when the MIME stream
 * cannot be parsed further.
 */
async function parseLevel(
  input: Readable,
  ctx: ParseContext,
  parentId: string | null,
  depth: number,
  level: LevelResult = emptyLevel(),
): Promise<LevelResult> {
  const parser = new MailParser(PARSER_OPTIONS);
  const warnings = level.warnings;
  const inspector = new MimeInspector();
  inspect(parser, inspector);

  parser.on('headers', (headers: Headers) => {
    const subject = headers.get('subject');
    const id = headers.get('message-id');
    level.messageId = typeof id === 'string' ? id.replace(/^<|>$/g, '').trim() : '';
    level.subject = typeof subject === 'string' ? subject.trim() : '';
    level.from = firstAddress(headers.get('from'));
  });
  // mailparser reads an unreadable Date as "now": read the raw line instead.
  parser.on('headerLines', (lines: HeaderLines) => (level.date = readDate(lines, warnings)));

  let current: Readable | null = null;
  // If the parser dies while an attachment is being read, its content stream would never end.
  parser.once('close', () => current?.destroy(new Error('MIME parser stopped')));

  const own: Array<{
    record: ParsedAttachment;
    cid: string | null;
    related: boolean;
    contentDisposition?: string;
  }> = [];
  let html = '';

  async function handle(item: AttachmentStream): Promise<void> {
    const n = ctx.attachments.length + 1;
    const ct = item.headers.get('content-type') as StructuredHeader | undefined;
    const declared = (ct?.value ?? '').trim().toLowerCase();
    const declaredType = MIME_TYPE.test(declared) ? declared : 'application/octet-stream';
    const cid = item.cid?.trim().slice(0, 255) || null;
    const originalFilename = (item.filename ?? '').trim();
    const record: ParsedAttachment = {
      id: randomUUID(),
      parentId,
      filename: '',
      originalFilename,
      declaredType,
      disposition: 'attachment',
      contentId: cid,
      size: 0,
      sha256: '',
      stored: false,
    };
    // In document order: a forwarded message before its own attachments.
    ctx.attachments.push(record);
    own.push({ record, cid, related: item.related === true, contentDisposition: item.contentDisposition });

    const isMessage = declaredType === 'message/rfc822' || item.contentType === 'message/rfc822';
    let nested: Feed<LevelResult> | undefined;
    const inner = emptyLevel();
    if (isMessage && depth < MAX_FORWARD_DEPTH)
      nested = new Feed((i) => parseLevel(i, ctx, record.id, depth + 1, inner));
    else if (isMessage)
      warnings.push(
        `forwarded messages nested deeper than ${MAX_FORWARD_DEPTH} levels are kept whole, not opened`,
      );

    // mailparser passes uuencoded bodies through as they came: decode them here.
    const encoding = String(item.headers.get('content-transfer-encoding') ?? '')
      .trim()
      .toLowerCase();
    const uu = UUENCODINGS.has(encoding) ? new UudecodeStream() : null;
    current = item.content;
    let consumed: Awaited<ReturnType<typeof consume>>;
    try {
      consumed = await consume(uu ? pipe(item.content, uu, noop) : item.content, ctx, nested);
    } finally {
      current = null;
    }
    Object.assign(record, consumed);
    item.release?.();
    if (uu && !record.originalFilename) record.originalFilename = uu.name;

    let derivedName = '';
    if (nested) {
      let failure = '';
      try {
        await nested.result;
      } catch (err) {
        if (err instanceof PostroomError) throw err;
        failure = `could not be parsed past a point: ${message(err)}`;
      }
      derivedName = inner.subject ? `${inner.subject}.eml` : '';
      const label = inner.subject
        ? `forwarded message "${inner.subject.slice(0, 100)}"`
        : `forwarded message ${n}`;
      for (const w of failure ? [...inner.warnings, failure] : inner.warnings)
        warnings.push(`${label}: ${w}`);
    }
    const fallback = `${isMessage ? 'forwarded' : 'attachment'}-${n}.${extensionFor(declaredType)}`;
    record.filename = safeFilename(record.originalFilename || derivedName, fallback);
    if (uu) {
      const problems = uu.bytes === 0 ? ['it holds no data', ...uu.problems] : uu.problems;
      for (const p of problems) warnings.push(`"${record.filename}" (${encoding}): ${p}`);
    }
    if (!record.stored)
      warnings.push(
        `"${record.filename}" is ${record.size} bytes, over the ${ctx.attachmentMaxBytes}-byte attachment limit: recorded, not stored`,
      );
    ctx.complete.add(record);
  }

  const reading = (async () => {
    for await (const item of parser as AsyncIterable<AttachmentStream | MessageText>) {
      if (item.type === 'text') html = item.html ?? '';
      else await handle(item);
    }
  })();
  const [readOutcome, feedOutcome] = await Promise.allSettled([reading, pipeline(input, parser)]);
  const failure =
    readOutcome.status === 'rejected'
      ? (readOutcome.reason as unknown)
      : feedOutcome.status === 'rejected'
        ? (feedOutcome.reason as unknown)
        : undefined;
  if (failure !== undefined) {
    warnings.unshift(...inspector.partial());
    throw failure;
  }

  const cids = referencedCids(html);
  for (const { record, cid, related, contentDisposition } of own) {
    const inline = cid !== null && (cids.has(cid) || (related && contentDisposition !== 'attachment'));
    record.disposition = inline ? 'inline' : 'attachment';
  }

  warnings.unshift(...inspector.finish());
  return level;
}

/**
 * Parses one raw email as it streams in, never holding it or an attachment whole in memory.
 *
 * Every attachment, inline image and forwarded message (message/rfc822) is hashed with SHA-256 as it
 * streams and its bytes are written to `deps.blobs`; one over `limits.attachmentMaxBytes` is still
 * hashed and counted but not kept (`stored: false`). A forwarded message is recorded whole (named after
 * its subject, `.eml`) and parsed again, its own attachments pointing at it with `parentId`.
 * Malformed MIME (a missing closing boundary, bad base64, a truncated part, a structure mailparser
 * gives up on) is reported in `warnings`; the message is still read to its end.
 *
 * Rejects with `PermanentError` `MAIL.TOO_LARGE` as soon as more than `limits.messageMaxBytes` have been
 * read (attachments stored before that point stay in the content-addressed store, unreferenced), with
 * `RetryableError` when the blob store fails, and with the source's own error when the source fails.
 */
export async function parseMessage(
  source: Readable,
  deps: MimeParserDeps,
  limits: MimeParserLimits,
): Promise<ParsedEmail> {
  for (const [k, v] of Object.entries(limits))
    if (!Number.isSafeInteger(v) || v < 0)
      throw new RangeError(`limits.${k} must be a non-negative integer, got ${v}`);

  const ctx: ParseContext = {
    blobs: deps.blobs,
    attachmentMaxBytes: limits.attachmentMaxBytes,
    attachments: [],
    complete: new WeakSet(),
  };
  const hash = createHash('sha256');
  let size = 0;
  const level = emptyLevel();
  const top = new Feed((input) => parseLevel(input, ctx, null, 0, level));
  try {
    for await (const raw of source as AsyncIterable<Buffer | string>) {
      const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
      size += chunk.length;
      if (size > limits.messageMaxBytes)
        throw new PermanentError(
          'MAIL.TOO_LARGE',
          `Message refused: more than ${limits.messageMaxBytes} bytes`,
          {
            details: { messageMaxBytes: limits.messageMaxBytes },
          },
        );
      hash.update(chunk);
      await top.write(chunk);
    }
  } catch (err) {
    // Stop the parse and wait for it, so that no write to the blob store outlives this call.
    top.abort(err instanceof Error ? err : new Error(String(err)));
    await top.settled;
    throw err;
  }
  top.end();

  const warnings = level.warnings;
  try {
    await top.result;
  } catch (err) {
    if (err instanceof PostroomError) throw err;
    warnings.push(`the MIME structure could not be parsed past a point: ${message(err)}`);
  }

  const attachments = ctx.attachments.filter((a) => ctx.complete.has(a));
  if (attachments.length < ctx.attachments.length)
    warnings.push(
      `${ctx.attachments.length - attachments.length} attachment(s) cut off by the parse failure were dropped`,
    );

  const digest = hash.digest('hex');
  return {
    messageId: level.messageId || `${digest}@${SYNTHETIC_ID_DOMAIN}`,
    syntheticMessageId: !level.messageId,
    subject: level.subject,
    from: level.from,
    date: level.date,
    size,
    attachments,
    warnings,
  };
}
