import type { AttachmentConvertedV1 } from '../../contracts/index.js';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { HandlerContext } from '../../infra/broker/handler.js';
import type { TimelineEntry } from '../../infra/db/repositories/timeline.repository.js';
import type { Transaction } from 'kysely';
import type { Database } from '../../infra/db/database.js';
import { describeError, isRetryable } from '../../infra/errors.js';
import { fileOnce, reservedIdOf, type FilingOutcome } from './file-once.js';
import type { FileStore } from '../../infra/drive/file-store.js';
import { renderFolderTemplate } from './folder-template.js';

/** What filing a converted PDF needs (the Drive consumer's own parts). */
export interface PdfFilingDeps {
  store: FileStore;
  blobs: BlobStore;
  folderTemplate: string;
}

/**
 * Files the PDF of a converted document next to its original: the same folder (the template renders
 * the same path from the same email), the original's base name with `.pdf`, and the same exactly-once
 * rules as any upload (reserved id stored first, identical bytes in the folder linked, not copied).
 * Null when there is nothing to file: the conversion failed, or the PDF is already final.
 */
export async function filePdf(
  event: AttachmentConvertedV1,
  ctx: HandlerContext,
  deps: PdfFilingDeps,
): Promise<FilingOutcome | null> {
  const d = event.data;
  if (d.status !== 'converted' || !d.pdf) return null;
  const pdf = d.pdf;
  const row = await ctx.db
    .selectFrom('attachments')
    .innerJoin('emails', 'emails.id', 'attachments.email_id')
    .select([
      'attachments.pdf_drive_status',
      'attachments.pdf_drive_file_id',
      'emails.from_address',
      'emails.subject',
      'emails.received_at',
    ])
    .where('attachments.id', '=', d.attachmentId)
    .executeTakeFirst();
  if (!row || row.pdf_drive_status !== 'pending') return null;
  const segments = renderFolderTemplate(deps.folderTemplate, {
    date: row.received_at,
    from: row.from_address,
    subject: row.subject,
  });
  const folder = segments.join('/');
  try {
    const folderId = await deps.store.ensureFolder(segments);
    return await fileOnce({
      store: deps.store,
      db: ctx.db,
      folderId,
      folder,
      sha256: pdf.sha256,
      size: pdf.size,
      open: () => deps.blobs.open(pdf.sha256),
      name: pdf.filename,
      mimeType: 'application/pdf',
      appProperties: {
        emailId: d.emailId,
        attachmentId: d.attachmentId,
        convertedFrom: d.sha256.slice(0, 64),
      },
      idKey: `pdf:${d.attachmentId}`,
      reservedFileId: row.pdf_drive_file_id,
      readReservedId: reservedIdOf(ctx.db, d.attachmentId, 'pdf_drive_file_id'),
      saveReservedId: async (fileId) => {
        await ctx.db
          .updateTable('attachments')
          .set({ pdf_drive_file_id: fileId })
          .where('id', '=', d.attachmentId)
          .execute();
      },
    });
  } catch (err) {
    if (isRetryable(err) && !ctx.lastAttempt) throw err;
    ctx.log.warn({ err, attachmentId: d.attachmentId }, 'filing the converted PDF failed for good');
    return { status: 'failed', file: null, folder, detail: describeError(err) };
  }
}

/** Records how filing the PDF ended (only while it is pending); returns the timeline entry to write. */
export async function recordPdfFiling(
  trx: Transaction<Database>,
  event: AttachmentConvertedV1,
  outcome: FilingOutcome,
): Promise<TimelineEntry[]> {
  const updated = await trx
    .updateTable('attachments')
    .set({
      pdf_drive_status: outcome.status,
      pdf_drive_file_id: outcome.file?.fileId ?? null,
      pdf_drive_link: outcome.file?.link ?? null,
      pdf_uploaded_at: outcome.status === 'uploaded' ? new Date() : null,
    })
    .where('id', '=', event.data.attachmentId)
    .where('pdf_drive_status', '=', 'pending')
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) return [];
  return [
    {
      emailId: event.data.emailId,
      stage: 'drive',
      event: `pdf.${outcome.status}`,
      detail: `${event.data.pdf?.filename ?? 'PDF'}: ${outcome.detail}`,
    },
  ];
}
