import type { BlobStore } from '../../infra/blobs/blob-store.js';
import type { ConsumerDefinition } from '../../infra/broker/handler.js';
import { SUBSCRIPTIONS } from '../../infra/broker/subscriptions.js';
import { appendTimeline } from '../../infra/db/repositories/timeline.repository.js';
import { describeError, isRetryable } from '../../infra/errors.js';
import { analyzeAttachment, type AnalysisLimits, type AnalysisResult } from './analyze.js';

/** What the analysis consumer needs. */
export interface AttachmentAnalysisDeps {
  blobs: BlobStore;
  limits: AnalysisLimits;
  /** Messages analysed at once (default 4: analysis is CPU-bound and the machine has few cores). */
  prefetch?: number;
}

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
  return {
    name: 'attachment-analysis',
    events: SUBSCRIPTIONS['attachment-analysis'],
    prefetch: deps.prefetch ?? 4,
    async handle(event, ctx) {
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
      const thumbnailSha256 = result.thumbnail ? (await deps.blobs.put(result.thumbnail)).sha256 : null;
      const image = result.image
        ? {
            width: result.image.width,
            height: result.image.height,
            format: result.image.format,
            orientation: result.image.orientation ?? null,
          }
        : null;
      await ctx.commit(async (trx, emit) => {
        await trx
          .updateTable('attachments')
          .set({
            verdict: result.verdict,
            reason: result.reason,
            detected_type: result.detectedType,
            image_width: image?.width ?? null,
            image_height: image?.height ?? null,
            image_format: image?.format ?? null,
            image_orientation: image?.orientation ?? null,
            thumbnail_sha256: thumbnailSha256,
            analyzed_at: new Date(),
          })
          .where('id', '=', d.attachmentId)
          .execute();
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
      ctx.log.info(
        { attachmentId: d.attachmentId, verdict: result.verdict, detectedType: result.detectedType },
        'attachment analysed',
      );
    },
  };
}
