import { buffer } from 'node:stream/consumers';
import type { AttachmentAnalyzedV1 } from '../../contracts/index.js';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { ConsumerDefinition, HandlerContext } from '../../infra/broker/handler.js';
import { SUBSCRIPTIONS } from '../../infra/broker/subscriptions.js';
import { LOCK_BUSY, withNamedLock } from '../../infra/db/named-lock.js';
import { appendTimeline } from '../../infra/db/repositories/timeline.repository.js';
import { officeExtension, pdfFilename } from '../../infra/documents/convertible.js';
import type { PreviewOutcome } from '../../infra/documents/pdf-preview.js';
import { describeError, isRetryable, RetryableError } from '../../infra/errors.js';
import { ConversionFailed, type Converter } from './converter.js';

/** What the conversion consumer needs. */
export interface ConversionDeps {
  converter: Converter;
  blobs: BlobStore;
  /** `CONVERT_TIMEOUT_SECONDS`, in milliseconds. */
  timeoutMs: number;
  /** Makes the first page's thumbnail (null: no preview available). */
  preview: (pdf: Buffer) => Promise<PreviewOutcome>;
  /** Messages at once: the converter's concurrency (1 for Gotenberg). */
  prefetch: number;
}

/** What one conversion ended with, before it is recorded. */
interface Outcome {
  status: 'converted' | 'failed';
  reason: string;
  pdf: { sha256: string; size: number; filename: string } | null;
  thumbnailSha256: string | null;
}

/**
 * Consumes `attachment.analyzed` and converts accepted office documents to PDF. The PDF goes to the
 * blob store (by SHA-256), its first page becomes the attachment's thumbnail, and the outcome is
 * recorded on the attachment and published as `attachment.converted` in one transaction with the inbox;
 * the Drive consumer files the PDF from there. Identical bytes are converted once: under a named lock
 * on their SHA-256, a conversion already made for them is reused. A document that cannot be converted
 * (damaged, past the time limit), or a converter still unreachable on the last attempt, is recorded as
 * `failed` with the reason: the email completes and the original is filed all the same.
 */
export function createConversionHandler(deps: ConversionDeps): ConsumerDefinition<'attachment.analyzed'> {
  const convert = async (
    d: AttachmentAnalyzedV1['data'],
    extension: string,
    filename: string,
    ctx: HandlerContext,
  ) => {
    const reused = await earlierConversion(ctx, d.sha256);
    if (reused?.pdf) return { ...reused, pdf: { ...reused.pdf, filename: pdfFilename(filename) } };
    let pdf: Buffer;
    try {
      const bytes = await buffer(await deps.blobs.open(d.sha256));
      pdf = await deps.converter.convert({ bytes, extension }, deps.timeoutMs);
    } catch (err) {
      if (err instanceof ConversionFailed) return failed(err.message);
      if (isRetryable(err) && !ctx.lastAttempt) throw err;
      ctx.log.warn({ err, attachmentId: d.attachmentId }, 'conversion failed for good');
      return failed(
        isRetryable(err)
          ? `The converter could not be used after ${ctx.attempt} attempts (${describeError(err)}).`
          : `The document could not be converted (${describeError(err)}).`,
      );
    }
    const stored = await deps.blobs.put(pdf);
    const preview = await deps.preview(pdf);
    const thumbnailSha256 = preview?.ok ? (await deps.blobs.put(preview.thumbnail)).sha256 : null;
    const pages = countPages(pdf);
    let reason = `Converted to a ${pages === null ? '' : `${pages}-page `}PDF by ${deps.converter.name === 'local' ? 'LibreOffice' : 'Gotenberg'}.`;
    if (preview && !preview.ok) reason += ` No preview: ${preview.reason}`;
    return {
      status: 'converted',
      reason,
      pdf: { sha256: stored.sha256, size: stored.size, filename: pdfFilename(filename) },
      thumbnailSha256,
    } satisfies Outcome;
  };

  return {
    name: 'conversion',
    events: SUBSCRIPTIONS['conversion'],
    prefetch: deps.prefetch,
    async handle(event, ctx) {
      const d = event.data;
      if (d.verdict !== 'accepted') return;
      const row = await ctx.db
        .selectFrom('attachments')
        .select(['filename', 'conversion_status'])
        .where('id', '=', d.attachmentId)
        .executeTakeFirst();
      if (!row)
        throw new RetryableError(
          'CONVERT.ATTACHMENT_UNKNOWN',
          `Attachment ${d.attachmentId} is not recorded (yet)`,
        );
      const extension = officeExtension(d.detectedType, row.filename);
      if (extension === null) return;
      if (row.conversion_status === 'converted' || row.conversion_status === 'failed') return;

      // One conversion of these bytes at a time across every process: the second waits and reuses it.
      const lockWait = Math.ceil(deps.timeoutMs / 1000) + 30;
      const done = await withNamedLock(
        ctx.db,
        `postroom:convert:${d.sha256.slice(0, 40)}`,
        lockWait,
        async () => {
          const outcome = await convert(d, extension, row.filename, ctx);
          await ctx.commit(async (trx, emit) => {
            const updated = await trx
              .updateTable('attachments')
              .set({
                conversion_status: outcome.status,
                conversion_reason: outcome.reason.slice(0, 2000),
                conversion_converter: deps.converter.name,
                pdf_sha256: outcome.pdf?.sha256 ?? null,
                pdf_size: outcome.pdf?.size ?? null,
                pdf_filename: outcome.pdf?.filename ?? null,
                pdf_drive_status: outcome.pdf ? 'pending' : null,
                converted_at: new Date(),
              })
              .where('id', '=', d.attachmentId)
              .where((eb) =>
                eb.or([eb('conversion_status', 'is', null), eb('conversion_status', '=', 'pending')]),
              )
              .executeTakeFirst();
            if (Number(updated.numUpdatedRows) === 0) return;
            if (outcome.thumbnailSha256)
              await trx
                .updateTable('attachments')
                .set({ thumbnail_sha256: outcome.thumbnailSha256 })
                .where('id', '=', d.attachmentId)
                .where('thumbnail_sha256', 'is', null)
                .execute();
            await appendTimeline(trx, [
              {
                emailId: d.emailId,
                stage: 'convert',
                event: `attachment.${outcome.status === 'converted' ? 'converted' : 'conversion-failed'}`,
                detail: `${row.filename}: ${outcome.reason}`,
              },
            ]);
            emit(
              ctx.event('attachment.converted', {
                attachmentId: d.attachmentId,
                emailId: d.emailId,
                sha256: d.sha256,
                status: outcome.status,
                reason: outcome.reason.slice(0, 2000),
                converter: deps.converter.name,
                pdf: outcome.pdf,
                thumbnailSha256: outcome.thumbnailSha256,
              }),
            );
          });
          return outcome;
        },
      );
      if (done === LOCK_BUSY)
        throw new RetryableError(
          'CONVERT.LOCK_TIMEOUT',
          `Another process is converting the same bytes (${d.sha256})`,
        );
      ctx.log.info({ attachmentId: d.attachmentId, status: done.status }, 'document conversion recorded');
    },
  };
}

/** A successful conversion of the same bytes made earlier (its PDF still stored), reused as it is. */
async function earlierConversion(ctx: HandlerContext, sha256: string): Promise<Outcome | null> {
  const earlier = await ctx.db
    .selectFrom('attachments')
    .select(['pdf_sha256', 'pdf_size', 'conversion_reason', 'thumbnail_sha256', 'filename'])
    .where('sha256', '=', sha256)
    .where('conversion_status', '=', 'converted')
    .where('pdf_sha256', 'is not', null)
    .limit(1)
    .executeTakeFirst();
  if (!earlier?.pdf_sha256) return null;
  return {
    status: 'converted',
    reason: earlier.conversion_reason ?? 'Converted to PDF.',
    pdf: { sha256: earlier.pdf_sha256, size: Number(earlier.pdf_size), filename: earlier.filename },
    thumbnailSha256: earlier.thumbnail_sha256,
  };
}

function failed(reason: string): Outcome {
  return { status: 'failed', reason, pdf: null, thumbnailSha256: null };
}

/** Pages of a PDF by its `/Type /Page` objects; null when none are found (object streams hide them). */
function countPages(pdf: Buffer): number | null {
  const n = (pdf.toString('latin1').match(/\/Type\s*\/Page(?![a-zA-Z])/g) ?? []).length;
  return n > 0 ? n : null;
}
