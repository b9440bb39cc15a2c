import { createHash, randomUUID } from 'node:crypto';
import type { Insertable, Kysely, Transaction } from 'kysely';
import type { AnyEvent } from '../../../contracts/index.js';
import { createEvent } from '../../broker/events.js';
import { enqueueEvents, signalOutbox } from '../../broker/outbox.js';
import { isDuplicateKey, transactionWithRetry } from '../database.js';
import { emailProcessedSeconds } from '../../metrics.js';
import type { AttachmentsTable } from '../tables/attachments.table.js';
import type { EmailsTable } from '../tables/emails.table.js';
import type { Database } from '../tables/index.js';
import { appendTimeline, type TimelineEntry } from './timeline.repository.js';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * Where a recorded email came from: an IMAP mailbox (UID known), a file sent to the Telegram bot, or a
 * `.eml` file put in the drop folder.
 */
export type EmailOrigin =
  | {
      source: 'imap';
      /** Mailbox path the mail was read from. */
      mailbox: string;
      /** Its UID there, to apply IMAP_AFTER after the commit. */
      uid: number;
      /** The mailbox's UIDVALIDITY, decimal. */
      uidValidity: string;
    }
  | {
      source: 'telegram';
      /** Chat the file came from. */
      chatId: string;
    }
  | {
      source: 'file';
      /** The file's name in the drop folder (INBOX_DIR), for the timeline. */
      file: string;
    }
  | {
      source: 'drive';
      /** Drive file id of the file taken from the intake folder. */
      fileId: string;
    };

/** One attachment, inline image or forwarded message found in an email. */
export interface RecordedAttachment {
  /** UUID chosen by the parser (so children of a forwarded message can point at their parent). */
  id: string;
  /** Id of the forwarded message (itself an attachment with declaredType message/rfc822) it came from, or null. */
  parentId: string | null;
  /** Safe name as filed (no path separators or control characters, at most 255 bytes, never empty). */
  filename: string;
  /** The name as the sender wrote it (RFC 2047 / 2231 decoded), or '' when it had none. */
  originalFilename: string;
  /** Content-Type as declared, lower case, without parameters (application/octet-stream when absent). */
  declaredType: string;
  /** `inline` for parts with a Content-ID referenced as inline images, else `attachment`. */
  disposition: 'attachment' | 'inline';
  /** Content-ID without angle brackets, or null. */
  contentId: string | null;
  /** Decoded size in bytes (counted even when the bytes were not kept). */
  size: number;
  /** SHA-256 of the decoded bytes, hex (computed even when the bytes were not kept). */
  sha256: string;
  /** False when the part exceeded ATTACHMENT_MAX_BYTES: recorded, not stored, later rejected. */
  stored: boolean;
}

/**
 * The facts of one email `recordEmail` needs; the IMAP poller's `ParsedEmail` extends it (declared
 * here, not imported, so infra/ does not depend on producers/).
 */
export interface EmailFacts {
  /** Message-ID, with or without angle brackets. */
  messageId: string;
  /** Decoded subject (cut to 2000 characters). */
  subject: string;
  /** Sender address, lower case (cut to 320 characters). */
  from: string;
  /** Raw message size in bytes. */
  size: number;
  /** Parsing problems (the first 50 are kept). */
  warnings: string[];
  /** Attachments in document order; their bytes are in the blob store when `stored`. */
  attachments: RecordedAttachment[];
}

/** What `recordEmail` records. */
export type RecordEmailInput = EmailOrigin & {
  /** The parsed email; its attachments' bytes are already in the blob store. */
  parsed: EmailFacts;
  /** When the mail was received (IMAP internal date, else its Date header, else now). */
  receivedAt: Date;
};

/** Most warnings kept per email, and longest warning (characters): the column is TEXT (64 KiB). */
const MAX_WARNINGS = 50;
const MAX_WARNING_LENGTH = 500;
/** Cuts a string to at most `max` code points without splitting a surrogate pair. */
function clip(value: string, max: number): string {
  if (value.length <= max) return value;
  return Array.from(value).slice(0, max).join('');
}

/** The Message-ID as compared for deduplication: trimmed, without its angle brackets. Case is kept (RFC 5322). */
export function normalizeMessageId(messageId: string): string {
  return messageId.trim().replace(/^<+/, '').replace(/>+$/, '').trim();
}

/** SHA-256 (hex) of the normalized Message-ID: the unique key of `emails`. Use it to look an email up by Message-ID. */
export function messageIdHash(messageId: string): string {
  return createHash('sha256').update(normalizeMessageId(messageId), 'utf8').digest('hex');
}

/** The id of the email with this Message-ID, or null. */
export async function findEmailIdByMessageId(db: Db, messageId: string): Promise<string | null> {
  const row = await db
    .selectFrom('emails')
    .select('id')
    .where('message_id_hash', '=', messageIdHash(messageId))
    .executeTakeFirst();
  return row?.id ?? null;
}

/** Options of {@link recordEmail}. */
export interface RecordEmailOptions {
  /**
   * More writes committed with the email (the IMAP poller's small attachment blobs). Runs inside the
   * transaction right after the `emails` row is inserted, so a duplicate Message-ID writes nothing.
   */
  withinTransaction?: (trx: Transaction<Database>) => Promise<void>;
}

/** The rows and events of one email, built (and its events validated) before any transaction. */
interface EmailRecord {
  emailId: string;
  messageId: string;
  hash: string;
  email: Insertable<EmailsTable>;
  attachments: Insertable<AttachmentsTable>[];
  timeline: TimelineEntry[];
  events: AnyEvent[];
  /** An email with no attachment is final when recorded: closed in the same transaction. */
  closed: boolean;
}

/** Builds the rows and events of one email; throws `ValidationError` when an event breaks its contract. */
function buildEmailRecord(input: RecordEmailInput, now: Date): EmailRecord {
  const { parsed } = input;
  const messageId = normalizeMessageId(parsed.messageId);
  const hash = messageIdHash(messageId);
  const emailId = randomUUID();
  const storedMessageId = clip(messageId, 998);
  const subject = clip(parsed.subject, 2000);
  const from = clip(parsed.from, 320);
  const warnings = parsed.warnings.slice(0, MAX_WARNINGS).map((w) => clip(w, MAX_WARNING_LENGTH));
  if (parsed.warnings.length > MAX_WARNINGS)
    warnings.push(`${parsed.warnings.length - MAX_WARNINGS} more warnings not kept`);
  const imap = input.source === 'imap' ? input : null;
  const attachments = parsed.attachments.map((a, seq) => ({
    id: a.id,
    email_id: emailId,
    parent_id: a.parentId,
    seq,
    filename: clip(a.filename, 255),
    original_filename: clip(a.originalFilename, 2000),
    size: a.size,
    sha256: a.sha256,
    stored: a.stored ? 1 : 0,
    declared_type: clip(a.declaredType, 255),
    detected_type: null,
    disposition: a.disposition,
    content_id: a.contentId === null ? null : clip(a.contentId, 255),
    verdict: 'pending',
    reason: null,
    image_width: null,
    image_height: null,
    image_format: null,
    image_orientation: null,
    thumbnail_sha256: null,
    analyzed_at: null,
    drive_status: 'pending',
    drive_file_id: null,
    drive_link: null,
    drive_folder: null,
    uploaded_at: null,
    created_at: now,
  }));

  // Events are built (and validated) before the transaction: a contract breach writes nothing.
  const origin = { correlationId: emailId, causationId: null };
  const events: AnyEvent[] = [
    createEvent(
      'email.received',
      {
        emailId,
        messageId: storedMessageId,
        source: input.source,
        subject,
        from,
        receivedAt: input.receivedAt.toISOString(),
        attachmentCount: attachments.length,
        warnings,
        chatId: input.source === 'telegram' ? input.chatId : null,
      },
      origin,
    ),
    ...attachments.map((a) =>
      createEvent(
        'attachment.stored',
        {
          attachmentId: a.id,
          emailId,
          sha256: a.sha256,
          size: a.size,
          stored: a.stored === 1,
          filename: a.filename,
          originalFilename: a.original_filename,
          declaredType: a.declared_type,
          disposition: a.disposition as 'attachment' | 'inline',
          parentId: a.parent_id,
        },
        origin,
      ),
    ),
  ];
  // Nothing to analyse or file: the email is final as it arrives, and closed in the transaction that
  // records it, so that its notification and hooks do not wait for the Drive consumer (which may be
  // waiting out a Drive outage) to look at an email it has nothing to do with.
  const closed = attachments.length === 0;
  if (closed)
    events.push(
      createEvent(
        'email.processed',
        {
          emailId,
          messageId: storedMessageId,
          source: input.source,
          subject,
          from,
          chatId: input.source === 'telegram' ? input.chatId : null,
          attachments: [],
        },
        origin,
      ),
    );
  const where =
    input.source === 'imap'
      ? `imap ${input.mailbox} uid ${input.uid}`
      : input.source === 'telegram'
        ? `telegram chat ${input.chatId}`
        : input.source === 'drive'
          ? `drive intake file ${input.fileId}`
          : `file ${input.file}`;
  return {
    emailId,
    messageId,
    hash,
    email: {
      id: emailId,
      message_id: storedMessageId,
      message_id_hash: hash,
      source: input.source,
      subject,
      from_address: from,
      received_at: input.receivedAt,
      status: closed ? 'done' : 'processing',
      warnings: JSON.stringify(warnings),
      size: parsed.size,
      attachment_count: attachments.length,
      mailbox: imap?.mailbox ?? null,
      uid: imap?.uid ?? null,
      uid_validity: imap?.uidValidity ?? null,
      imap_after_at: null,
      chat_id: input.source === 'telegram' ? input.chatId : null,
      created_at: now,
      done_at: closed ? now : null,
    },
    attachments,
    timeline: [
      {
        emailId,
        stage: 'ingest',
        event: 'email.received',
        detail: `${where}: ${attachments.length} attachment(s), ${warnings.length} warning(s)`,
        at: now,
      },
      ...(closed
        ? [
            {
              emailId,
              stage: 'ingest',
              event: 'email.processed',
              detail: 'no attachments: nothing to file',
              at: now,
            },
          ]
        : []),
    ],
    events,
    closed,
  };
}

/** Writes the rows and events of emails inside `trx`: one multi-row INSERT per table whatever their number. */
async function insertEmailRecords(
  trx: Transaction<Database>,
  records: readonly EmailRecord[],
  withinTransaction?: (trx: Transaction<Database>) => Promise<void>,
): Promise<void> {
  await trx
    .insertInto('emails')
    .values(records.map((r) => r.email))
    .execute();
  await withinTransaction?.(trx);
  const attachments = records.flatMap((r) => r.attachments);
  for (let i = 0; i < attachments.length; i += 200)
    await trx
      .insertInto('attachments')
      .values(attachments.slice(i, i + 200))
      .execute();
  await appendTimeline(
    trx,
    records.flatMap((r) => r.timeline),
  );
  await enqueueEvents(
    trx,
    records.flatMap((r) => r.events),
  );
}

/**
 * Records one email in ONE transaction: the `emails` row, its attachments (verdict and Drive status
 * `pending`), an `ingest` timeline entry and the outbox events `email.received` and one
 * `attachment.stored` per attachment (correlation id: the email id); signals the outbox relay after
 * the commit. An email with no attachment is final at once: it is recorded `done`, with a closing
 * timeline entry and `email.processed` in the same transaction. The same Message-ID twice is one
 * email: the second call records nothing and answers `created: false` with the first email's id (also
 * when two processes race: the unique key decides).
 * There is no lookup first: the `emails` INSERT comes first in the transaction, and its duplicate-key
 * error rolls the whole transaction back before the first email's id is read.
 * Throws `ValidationError` when an event breaks its contract (nothing is written then).
 */
export async function recordEmail(
  db: Kysely<Database>,
  input: RecordEmailInput,
  options: RecordEmailOptions = {},
): Promise<{ emailId: string; created: boolean }> {
  const record = buildEmailRecord(input, new Date());
  try {
    await db.transaction().execute((trx) => insertEmailRecords(trx, [record], options.withinTransaction));
  } catch (err) {
    if (isDuplicateKey(err)) {
      // Another process recorded the same Message-ID first.
      const winner = await findEmailIdByMessageId(db, record.messageId);
      if (winner) return { emailId: winner, created: false };
    }
    throw err;
  }
  signalOutbox();
  observeClosed([record]);
  return { emailId: record.emailId, created: true };
}

/** Counts the emails closed as they were recorded (no attachments) in `postroom_email_processed_seconds`. */
function observeClosed(records: readonly EmailRecord[]): void {
  for (const r of records)
    if (r.closed)
      emailProcessedSeconds.observe(
        Math.max(0, Number(r.email.created_at) - Number(r.email.received_at)) / 1000,
      );
}

/** Options of {@link recordEmails}. */
export interface RecordEmailsOptions {
  /**
   * More writes committed with the emails, run inside the transaction right after the `emails` rows
   * are inserted; `created` lists the indexes (in `inputs`) of the emails this call records, so the
   * writes of duplicates can be left out.
   */
  withinTransaction?: (trx: Transaction<Database>, created: readonly number[]) => Promise<void>;
}

/**
 * Records a batch of emails in ONE transaction, with the same rows and events per email as
 * {@link recordEmail} but one multi-row INSERT per table (emails, attachments, timeline, outbox) for
 * the whole batch: the statements of a batch do not grow with its size. Message-IDs already recorded
 * (one indexed read first) or repeated within the batch are not recorded again: they answer
 * `created: false` with the first email's id. A duplicate key met anyway (another process recording
 * the same Message-ID at this moment) rolls the whole batch back and is thrown, as is any other
 * failure: nothing of the batch is written then, and the caller records its emails one at a time
 * with {@link recordEmail}, which settles such races one email at a time.
 * Answers in the order of `inputs`.
 */
export async function recordEmails(
  db: Kysely<Database>,
  inputs: readonly RecordEmailInput[],
  options: RecordEmailsOptions = {},
): Promise<{ emailId: string; created: boolean }[]> {
  if (inputs.length === 0) return [];
  const now = new Date();
  const records = inputs.map((input) => buildEmailRecord(input, now));
  const known = new Map<string, string>();
  const hashes = [...new Set(records.map((r) => r.hash))];
  for (let i = 0; i < hashes.length; i += 500) {
    const rows = await db
      .selectFrom('emails')
      .select(['id', 'message_id_hash'])
      .where('message_id_hash', 'in', hashes.slice(i, i + 500))
      .execute();
    for (const row of rows) known.set(row.message_id_hash, row.id);
  }
  const answers = records.map((r) => {
    const first = known.get(r.hash);
    if (first) return { emailId: first, created: false };
    known.set(r.hash, r.emailId);
    return { emailId: r.emailId, created: true };
  });
  const created = answers.flatMap((a, i) => (a.created ? [i] : []));
  if (created.length === 0) return answers;
  // A deadlock with a consumer's batch is tried again as a batch, not one email at a time.
  await transactionWithRetry(db, (trx) =>
    insertEmailRecords(
      trx,
      created.map((i) => records[i]!),
      options.withinTransaction ? (t) => options.withinTransaction!(t, created) : undefined,
    ),
  );
  signalOutbox();
  observeClosed(created.map((i) => records[i]!));
  return answers;
}

/** An IMAP email whose IMAP_AFTER action is still to do (the process stopped between commit and flag update). */
export interface PendingImapAfter {
  emailId: string;
  uid: number;
}

/** IMAP emails of a mailbox (under this UIDVALIDITY) whose IMAP_AFTER was not applied yet, oldest first. */
export async function listPendingImapAfter(
  db: Db,
  mailbox: string,
  uidValidity: string,
  limit = 1000,
): Promise<PendingImapAfter[]> {
  const rows = await db
    .selectFrom('emails')
    .select(['id', 'uid'])
    .where('imap_after_at', 'is', null)
    .where('mailbox', '=', mailbox)
    .where('source', '=', 'imap')
    .where('uid_validity', '=', uidValidity)
    .orderBy('uid')
    .limit(limit)
    .execute();
  return rows.filter((r) => r.uid !== null).map((r) => ({ emailId: r.id, uid: Number(r.uid) }));
}

/**
 * Marks IMAP_AFTER as applied (`imap_after_at`) on one email or several, in one transaction (one
 * locking read, one UPDATE, one multi-row timeline INSERT whatever their number), and notes it on the
 * timeline of each email that was not marked yet; emails already marked are left as they are.
 * `action` is `seen`, `moved to <folder>` or `none`.
 */
export async function markImapAfterApplied(
  db: Kysely<Database>,
  emailIds: string | readonly string[],
  action: string,
): Promise<void> {
  const ids = [...new Set(typeof emailIds === 'string' ? [emailIds] : emailIds)];
  if (ids.length === 0) return;
  // Its locking read meets the Drive consumer's batches, which lock emails one by one to close them:
  // a deadlock between the two is settled by trying again, not by failing the IMAP session.
  await transactionWithRetry(db, async (trx) => {
    const now = new Date();
    // Locking read: which of them are still unmarked (a concurrent marker waits, then finds none).
    const open = await trx
      .selectFrom('emails')
      .select('id')
      .where('id', 'in', ids)
      .where('imap_after_at', 'is', null)
      .forUpdate()
      .execute();
    if (open.length === 0) return;
    const openIds = open.map((r) => r.id);
    await trx.updateTable('emails').set({ imap_after_at: now }).where('id', 'in', openIds).execute();
    await appendTimeline(
      trx,
      openIds.map((emailId) => ({ emailId, stage: 'ingest', event: 'imap.after', detail: action, at: now })),
    );
  });
}

/** How far the poller got in one mailbox. */
export interface ImapCheckpoint {
  /** UIDVALIDITY, decimal. */
  uidValidity: string;
  /** Highest UID whose email is committed (0: none yet). */
  lastUid: number;
}

/** The checkpoint of (account, mailbox), or null before the first message. */
export async function getImapCheckpoint(
  db: Db,
  account: string,
  mailbox: string,
): Promise<ImapCheckpoint | null> {
  const row = await db
    .selectFrom('imap_checkpoints')
    .select(['uid_validity', 'last_uid'])
    .where('account', '=', account)
    .where('mailbox', '=', mailbox)
    .executeTakeFirst();
  return row ? { uidValidity: row.uid_validity, lastUid: Number(row.last_uid) } : null;
}

/** Writes the checkpoint of (account, mailbox) (insert or update). */
export async function saveImapCheckpoint(
  db: Db,
  account: string,
  mailbox: string,
  checkpoint: ImapCheckpoint,
): Promise<void> {
  const now = new Date();
  await db
    .insertInto('imap_checkpoints')
    .values({
      account,
      mailbox,
      uid_validity: checkpoint.uidValidity,
      last_uid: checkpoint.lastUid,
      updated_at: now,
    })
    .onDuplicateKeyUpdate({
      uid_validity: checkpoint.uidValidity,
      last_uid: checkpoint.lastUid,
      updated_at: now,
    })
    .execute();
}
