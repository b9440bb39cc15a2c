import type { Transaction } from 'kysely';
import type { Database } from '../../infra/db/database.js';
import type { Emit, HandlerContext } from '../../infra/broker/handler.js';
import { emailProcessedSeconds } from '../../infra/metrics.js';
import { appendTimeline, type TimelineEntry } from '../../infra/db/repositories/timeline.repository.js';
import { batchState, type BatchWork } from '../../infra/db/batch-scope.js';

/** Who asked for an email's completion: the events it emits are staged through them. */
interface Asker {
  emit: Emit;
  ctx: Pick<HandlerContext, 'event'>;
  /** Timeline entries of the change, written with the closing entry (a message committed alone). */
  pending: readonly TimelineEntry[];
}

/** The emails a batch of commits asked to complete, checked together at the batch's end. */
const COMPLETIONS: BatchWork<Map<string, Asker>> = {
  stage: 1, // after the batch's updates of attachments
  start: () => new Map(),
  finish: (trx, askers) => completeEmails(trx, askers),
};

/**
 * Closes an email when every attachment is final: its row is locked (`FOR UPDATE`) so that two
 * consumers finishing its last two attachments at once serialize here, and exactly one of them sees
 * everything final and publishes `email.processed`. Call inside the transaction that made the last
 * change. `pending` are timeline entries of that change, written in the same INSERT as the closing
 * entry (one statement fewer), or alone when the email is not closed.
 *
 * In the transaction of a batch of commits (`CommitBatcher`), the check is made once for all the
 * emails the batch asked about, at its end: one locking SELECT of their rows (in key order, so two
 * batches never wait on each other in a circle), one SELECT of their attachments and one UPDATE of
 * those it closes, instead of three statements per message. It sees every change of the batch, so
 * an email whose two attachments are final in one batch is closed once.
 */
export async function completeEmailIfFinal(
  trx: Transaction<Database>,
  emailId: string,
  emit: Emit,
  ctx: Pick<HandlerContext, 'event'>,
  pending: readonly TimelineEntry[] = [],
): Promise<void> {
  const batch = batchState(trx, COMPLETIONS);
  if (!batch) return completeEmails(trx, new Map([[emailId, { emit, ctx, pending }]]));
  await appendTimeline(trx, pending); // held for the batch's one timeline INSERT
  batch.set(emailId, { emit, ctx, pending: [] });
}

/** Closes those of the emails asked about whose attachments are all final (see above). */
async function completeEmails(trx: Transaction<Database>, askers: Map<string, Asker>): Promise<void> {
  const ids = [...askers.keys()].sort();
  const emails = await trx
    .selectFrom('emails')
    .select(['id', 'status', 'message_id', 'source', 'subject', 'from_address', 'chat_id', 'received_at'])
    .where('id', 'in', ids)
    .orderBy('id')
    .forUpdate()
    .execute();
  const open = emails.filter((e) => e.status !== 'done');
  const attachments = new Map<string, AttachmentRow[]>(open.map((e) => [e.id, []]));
  if (open.length > 0)
    for (const a of await trx
      .selectFrom('attachments')
      .select([
        'email_id',
        'id',
        'filename',
        'verdict',
        'reason',
        'drive_status',
        'drive_link',
        ...CONVERSION_COLUMNS,
      ])
      .where('email_id', 'in', [...attachments.keys()])
      .orderBy('email_id')
      .orderBy('seq')
      .execute())
      attachments.get(a.email_id)?.push(a);
  const closing = open.filter((e) =>
    attachments
      .get(e.id)!
      .every((a) => a.verdict !== 'pending' && a.drive_status !== 'pending' && conversionFinal(a)),
  );
  const now = new Date();
  const closed = new Set(closing.map((e) => e.id));
  const entries: TimelineEntry[] = [];
  for (const [emailId, asker] of askers)
    entries.push(...(closed.has(emailId) ? asker.pending.map((p) => ({ at: now, ...p })) : asker.pending));
  if (closing.length > 0)
    await trx
      .updateTable('emails')
      .set({ status: 'done', done_at: now })
      .where('id', 'in', [...closed])
      .execute();
  for (const email of closing) {
    const list = attachments.get(email.id)!;
    emailProcessedSeconds.observe(Math.max(0, now.getTime() - email.received_at.getTime()) / 1000);
    entries.push({
      emailId: email.id,
      stage: 'drive',
      event: 'email.processed',
      detail: `${list.length} attachment(s) final`,
      at: now,
    });
    const { emit, ctx } = askers.get(email.id)!;
    emit(
      ctx.event('email.processed', {
        emailId: email.id,
        messageId: email.message_id,
        source: (['telegram', 'file', 'drive'] as const).find((s) => s === email.source) ?? 'imap',
        subject: email.subject,
        from: email.from_address,
        chatId: email.chat_id,
        attachments: list.map((a) => ({
          attachmentId: a.id,
          filename: a.filename,
          verdict: a.verdict as 'accepted' | 'quarantined' | 'rejected',
          reason: a.reason ?? '',
          driveStatus: a.drive_status as 'uploaded' | 'skipped' | 'failed' | 'not-filed',
          link: a.drive_link,
          ...conversionOf(a),
        })),
      }),
    );
  }
  await appendTimeline(trx, entries);
}

const CONVERSION_COLUMNS = [
  'conversion_status',
  'conversion_reason',
  'pdf_filename',
  'pdf_drive_status',
  'pdf_drive_link',
] as const;

/** What the completion reads of each attachment. */
type AttachmentRow = ConversionColumns & {
  email_id: string;
  id: string;
  filename: string;
  verdict: string;
  reason: string | null;
  drive_status: string;
  drive_link: string | null;
};

type ConversionColumns = {
  conversion_status: string | null;
  conversion_reason: string | null;
  pdf_filename: string | null;
  pdf_drive_status: string | null;
  pdf_drive_link: string | null;
};

/**
 * A pending conversion holds the email open, as a pending upload does, so `email.processed` (and the
 * notification and hooks it triggers) can carry the PDF's link; the wait is bounded by
 * CONVERT_TIMEOUT_SECONDS and the retries, after which the conversion is final as `failed`. With no
 * converter, no attachment has a conversion, and nothing changes.
 */
function conversionFinal(a: ConversionColumns): boolean {
  if (a.conversion_status === null || a.conversion_status === 'failed') return true;
  if (a.conversion_status === 'pending') return false;
  return a.pdf_drive_status !== 'pending';
}

/** The `conversion` field of an `email.processed` attachment: absent when it was not converted. */
function conversionOf(a: ConversionColumns) {
  if (a.conversion_status === null) return {};
  const status = a.conversion_status as 'converted' | 'failed' | 'pending';
  return {
    conversion: {
      status,
      reason: a.conversion_reason ?? '',
      pdfFilename: a.pdf_filename,
      driveStatus: a.pdf_drive_status as 'uploaded' | 'skipped' | 'failed' | 'pending' | null,
      link: a.pdf_drive_link,
    },
  };
}
