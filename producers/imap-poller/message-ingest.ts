import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ImapFlow } from 'imapflow';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { Logger } from '../../infra/logger.js';
import { parseMessage } from '../../infra/mail/mime-parser.js';
import type { ParsedEmail } from '../../infra/mail/parsed-email.js';

/** Header bytes read for a message that is recorded from its headers only. */
const HEADER_WINDOW = 256 * 1024;

/** What ingesting one message needs. */
export interface IngestDeps {
  blobs: BlobStore;
  log: Logger;
  /** Limits handed to the parser (bytes). */
  limits: { attachmentMaxBytes: number; messageMaxBytes: number };
}

/**
 * Downloads one message as a stream (64 KiB partial FETCHes, back-pressured by the parser) and parses
 * it; attachment bytes go to the blob store as they are decoded. Resolves null when the message is gone
 * (expunged by another client since it was listed). The download is aborted when the parser stops early.
 */
export async function downloadAndParse(
  client: ImapFlow,
  uid: number,
  deps: IngestDeps,
): Promise<ParsedEmail | null> {
  const download = await client.download(String(uid), undefined, { uid: true });
  if (!download.content) return null;
  const content = download.content;
  // The stream must never be left half-read: imapflow would wait for it to drain forever.
  content.on('error', (err) => deps.log.debug({ err, uid }, 'IMAP download stream failed'));
  try {
    return await parseMessage(content, { blobs: deps.blobs }, deps.limits);
  } finally {
    if (!content.readableEnded) content.destroy();
  }
}

/** The header block of a raw message prefix: up to the first empty line, or the whole prefix. */
function headerBlock(prefix: Buffer): { head: Buffer; complete: boolean } {
  const crlf = prefix.indexOf('\r\n\r\n');
  const lf = prefix.indexOf('\n\n');
  const cut = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : -1;
  return cut >= 0 ? { head: prefix.subarray(0, cut), complete: true } : { head: prefix, complete: false };
}

/**
 * Records what can be known of a message without downloading it: its headers (at most 256 KiB)
 * parsed for Message-ID, subject, sender and date; no attachments; `warning` first among the warnings.
 * Used for messages over the message bound and for messages whose processing kept failing, so that
 * no mail is ever dropped silently. Falls back to a synthetic Message-ID from the header bytes when
 * even the headers cannot be parsed.
 */
export async function headersOnly(
  client: ImapFlow,
  uid: number,
  size: number,
  warning: string,
  deps: IngestDeps,
): Promise<ParsedEmail | null> {
  const msg = await client.fetchOne(
    String(uid),
    { uid: true, source: { start: 0, maxLength: HEADER_WINDOW } },
    { uid: true },
  );
  if (!msg) return null;
  const { head, complete } = headerBlock(msg.source ?? Buffer.alloc(0));
  const warnings = [warning];
  if (!complete) warnings.push(`Header block longer than ${HEADER_WINDOW} bytes: only its start was read`);
  try {
    const parsed = await parseMessage(
      Readable.from([complete ? head : Buffer.concat([head, Buffer.from('\r\n\r\n')])]),
      { blobs: deps.blobs },
      deps.limits,
    );
    return { ...parsed, size, attachments: [], warnings: [...warnings, ...parsed.warnings] };
  } catch (err) {
    deps.log.warn(
      { err, uid },
      'headers of an IMAP message could not be parsed; recording it with a synthetic Message-ID',
    );
    const hash = createHash('sha256').update(head).digest('hex');
    return {
      messageId: `${hash}@postroom.invalid`,
      syntheticMessageId: true,
      subject: '',
      from: '',
      date: null,
      size,
      attachments: [],
      warnings: [...warnings, `Headers could not be parsed: ${(err as Error).message}`],
    };
  }
}
