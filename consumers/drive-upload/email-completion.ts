import type { Transaction } from 'kysely';
import type { Database } from '../../infra/db/database.js';
import type { Emit, HandlerContext } from '../../infra/broker/handler.js';
import { emailProcessedSeconds } from '../../infra/metrics.js';
import { appendTimeline, type TimelineEntry } from '../../infra/db/repositories/timeline.repository.js';

/**
 * Closes an email when every attachment is final: its row is locked (`FOR UPDATE`) so that two
 * consumers finishing its last two attachments at once serialize here, and exactly one of them sees
 * everything final and publishes `email.processed`. Call inside the transaction that made the last
 * change. `pending` are timeline entries of that change, written in the same INSERT as the closing
 * entry (one statement fewer), or alone when the email is not closed. Returns true when this call
 * closed the email.
 */
export async function completeEmailIfFinal(
  trx: Transaction<Database>,
  emailId: string,
  emit: Emit,
  ctx: Pick<HandlerContext, 'event'>,
  pending: readonly TimelineEntry[] = [],
): Promise<boolean> {
  const email = await trx
    .selectFrom('emails')
    .select(['id', 'status', 'message_id', 'source', 'subject', 'from_address', 'chat_id', 'received_at'])
    .where('id', '=', emailId)
    .forUpdate()
    .executeTakeFirst();
  if (!email || email.status === 'done') {
    await appendTimeline(trx, pending);
    return false;
  }
  const attachments = await trx
    .selectFrom('attachments')
    .select(['id', 'filename', 'verdict', 'reason', 'drive_status', 'drive_link', ...CONVERSION_COLUMNS])
    .where('email_id', '=', emailId)
    .orderBy('seq')
    .execute();
  const final = attachments.every(
    (a) => a.verdict !== 'pending' && a.drive_status !== 'pending' && conversionFinal(a),
  );
  if (!final) {
    await appendTimeline(trx, pending);
    return false;
  }
  const now = new Date();
  emailProcessedSeconds.observe(Math.max(0, now.getTime() - email.received_at.getTime()) / 1000);
  await trx.updateTable('emails').set({ status: 'done', done_at: now }).where('id', '=', emailId).execute();
  await appendTimeline(trx, [
    ...pending.map((p) => ({ at: now, ...p })),
    {
      emailId,
      stage: 'drive',
      event: 'email.processed',
      detail: `${attachments.length} attachment(s) final`,
      at: now,
    },
  ]);
  emit(
    ctx.event('email.processed', {
      emailId,
      messageId: email.message_id,
      source: (['telegram', 'file', 'drive'] as const).find((s) => s === email.source) ?? 'imap',
      subject: email.subject,
      from: email.from_address,
      chatId: email.chat_id,
      attachments: attachments.map((a) => ({
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
  return true;
}

const CONVERSION_COLUMNS = [
  'conversion_status',
  'conversion_reason',
  'pdf_filename',
  'pdf_drive_status',
  'pdf_drive_link',
] as const;

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
