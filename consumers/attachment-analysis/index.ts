import { startConsumer } from '../../infra/broker/consume.js';
import { pdfPreviewAvailable, renderPdfPreview, type PdfSource } from '../../infra/documents/pdf-preview.js';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import { createAttachmentAnalysisHandler } from './attachment-analysis.handler.js';

/** Starts the attachment-analysis consumer (role `analysis`). */
export async function startAttachmentAnalysis(ctx: RoleContext): Promise<RoleHandle> {
  const def = createAttachmentAnalysisHandler({
    blobs: ctx.blobs,
    limits: {
      attachmentMaxBytes: ctx.config.ATTACHMENT_MAX_BYTES,
      imageMaxPixels: ctx.config.IMAGE_MAX_PIXELS,
      timeoutMs: 60_000,
    },
    converting: ctx.config.converter !== 'off',
    // Without poppler-utils on the PATH, PDFs simply have no thumbnail.
    ...(pdfPreviewAvailable() ? { pdfPreview: (pdf: PdfSource) => renderPdfPreview(pdf) } : {}),
  });
  return startConsumer(def, ctx);
}
