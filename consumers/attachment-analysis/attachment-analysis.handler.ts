import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { AttachmentStoredV1 } from '../../contracts/index.js';
import type { ConsumerDefinition, HandlerContext } from '../../infra/broker/handler.js';
import { ByteBudget } from '../../infra/byte-budget.js';
import { SUBSCRIPTIONS } from '../../infra/broker/subscriptions.js';
import { appendTimeline } from '../../infra/db/repositories/timeline.repository.js';
import { updateRow } from '../../infra/db/update-rows.js';
import { officeExtension } from '../../infra/documents/convertible.js';
import type { PdfSource, PreviewOutcome } from '../../infra/documents/pdf-preview.js';
import { describeError, isRetryable } from '../../infra/errors.js';
import { analyzeAttachment, type AnalysisLimits, type AnalysisResult } from './analyze.js';

/** What the analysis consumer needs. */
export interface AttachmentAnalysisDeps {
  blobs: BlobStore;
  limits: AnalysisLimits;
  /**
   * Messages taken at once (default 32). Analysis is CPU-bound, but its database round trips are not,
   * and the commits of messages handled together share a transaction and its statements: a backlog
   * drains several times faster at 16 than at 4, and another 8 % faster at 32 (fewer statements per
   * mail; 48 gains nothing more). `budgetBytes` keeps large attachments from being held all at once.
   */
  prefetch?: number;
  /** Bytes of attachments analysed at once (default 16 MiB; a larger attachment runs alone). */
  budgetBytes?: number;
  /**
   * True when a converter is configured (CONVERTER not off): accepted office documents are then marked
   * `conversion: pending` with their verdict, so the email waits for the convert role's outcome.
   */
  converting?: boolean;
  /** Renders the first page of accepted PDFs as their thumbnail; absent: PDFs get none. */
  pdfPreview?: (pdf: PdfSource) => Promise<PreviewOutcome>;
}

/** Default bytes of attachments analysed at once. */
const ANALYSIS_BUDGET_BYTES = 16 * 1024 * 1024;

/**
 * Consumes `attachment.stored`, judges the bytes (RULES.md), stores the thumbnail of images, records
 * the verdict and facts on the attachment and publishes `attachment.analyzed`, all in one transaction
 * with the inbox. A failing file never blocks the others (each is its own message); a permanent
 * problem, or a transient one still failing on the last attempt, becomes a `rejected` verdict with
 * the reason, so the email can still complete.
 */
export function createAttachmentAnalysisHandler(
  deps: AttachmentAnalysisDeps,
): ConsumerDefinition<'attachment.stored'> {
  const budget = new ByteBudget(deps.budgetBytes ?? ANALYSIS_BUDGET_BYTES);
  /** The verdict on the bytes, with the PDF preview and the stored thumbnail. */
  const judge = async (
    event: AttachmentStoredV1,
    ctx: HandlerContext<'attachment.stored'>,
  ): Promise<{ result: AnalysisResult; thumbnailSha256: string | null }> => {
    const d = event.data;
    let result: AnalysisResult;
    try {
      result = await analyzeAttachment(
        {
          open: () => deps.blobs.open(d.sha256),
          size: d.size,
          stored: d.stored,
          filename: d.filename,
          declaredType: d.declaredType,
        },
        deps.limits,
      );
    } catch (err) {
      if (isRetryable(err) && !ctx.lastAttempt) throw err;
      ctx.log.warn({ err, attachmentId: d.attachmentId }, 'analysis failed; rejecting the attachment');
      result = {
        verdict: 'rejected',
        reason: isRetryable(err)
          ? `Could not be analysed after ${ctx.attempt} attempts (${describeError(err)})`
          : `Could not be analysed: ${describeError(err)}`,
        detectedType: null,
        image: null,
        thumbnail: null,
        archive: null,
      };
    }
    if (result.verdict === 'accepted' && result.detectedType === 'application/pdf' && deps.pdfPreview) {
      // Streamed to the preview's temp file: a 25 MiB PDF is never held whole in memory for it.
      const preview = await deps.pdfPreview(() => deps.blobs.open(d.sha256));
      if (preview?.ok) result = { ...result, thumbnail: preview.thumbnail };
      else if (preview)
        result = { ...result, reason: `${result.reason} No preview: ${preview.reason}`.slice(0, 2000) };
    }
    const thumbnailSha256 = result.thumbnail ? (await deps.blobs.put(result.thumbnail)).sha256 : null;
    return { result, thumbnailSha256 };
  };
  return {
    name: 'attachment-analysis',
    events: SUBSCRIPTIONS['attachment-analysis'],
    prefetch: deps.prefetch ?? 32,
    // The commit functions below write only through their transaction and emit: safe to batch.
    batchCommits: true,
    async handle(event, ctx) {
      const d = event.data;
      // The bytes are held (read, inspected, previewed) until the thumbnail is stored, not in the commit.
      const { result, thumbnailSha256 } = await budget.with(d.size, () => judge(event, ctx));
      const conversionPending =
        deps.converting === true &&
        result.verdict === 'accepted' &&
        officeExtension(result.detectedType, d.filename) !== null;
      const image = result.image
        ? {
            width: result.image.width,
            height: result.image.height,
            format: result.image.format,
            orientation: result.image.orientation ?? null,
          }
        : null;
      await ctx.commit(async (trx, emit) => {
        // With the other attachments of the batch, in one statement (or at once when alone).
        await updateRow(trx, 'attachments', {
          id: d.attachmentId,
          verdict: result.verdict,
          reason: result.reason,
          detected_type: result.detectedType,
          image_width: image?.width ?? null,
          image_height: image?.height ?? null,
          image_format: image?.format ?? null,
          image_orientation: image?.orientation ?? null,
          thumbnail_sha256: thumbnailSha256,
          ...(conversionPending ? { conversion_status: 'pending' } : {}),
          analyzed_at: new Date(),
        });
        await appendTimeline(trx, [
          {
            emailId: d.emailId,
            stage: 'analysis',
            event: 'attachment.analyzed',
            detail: `${d.filename}: ${result.verdict} (${result.reason})`,
          },
        ]);
        emit(
          ctx.event('attachment.analyzed', {
            attachmentId: d.attachmentId,
            emailId: d.emailId,
            sha256: d.sha256,
            verdict: result.verdict,
            reason: result.reason.slice(0, 2000),
            detectedType: result.detectedType,
            image,
            thumbnailSha256,
          }),
        );
      });
      ctx.log.debug(
        { attachmentId: d.attachmentId, verdict: result.verdict, detectedType: result.detectedType },
        'attachment analysed',
      );
    },
  };
}
