import { startConsumer } from '../../infra/broker/consume.js';
import { pdfPreviewAvailable, renderPdfPreview } from '../../infra/documents/pdf-preview.js';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import { createConversionHandler } from './conversion.handler.js';
import type { Converter } from './converter.js';
import { createGotenbergConverter } from './gotenberg-converter.js';
import { createLocalConverter } from './local-converter.js';

/** Starts the conversion consumer (role `convert`) with the configured converter (never called with `off`). */
export async function startConversion(ctx: RoleContext): Promise<RoleHandle> {
  const { config } = ctx;
  let converter: Converter;
  let prefetch: number;
  if (config.converter === 'gotenberg') {
    // The config check makes GOTENBERG_URL present with CONVERTER=gotenberg.
    converter = createGotenbergConverter({ url: config.GOTENBERG_URL ?? '' });
    prefetch = 1; // Gotenberg converts one document at a time: the rest wait in RabbitMQ
  } else {
    converter = createLocalConverter({ concurrency: config.CONVERT_CONCURRENCY });
    prefetch = config.CONVERT_CONCURRENCY;
  }
  const previews = pdfPreviewAvailable();
  ctx.log.info(
    { converter: converter.name, prefetch, timeoutSeconds: config.CONVERT_TIMEOUT_SECONDS, previews },
    previews
      ? 'converting office documents to PDF'
      : 'converting office documents to PDF; pdftoppm (poppler-utils) not found: no PDF previews',
  );
  const def = createConversionHandler({
    converter,
    blobs: ctx.blobs,
    timeoutMs: config.CONVERT_TIMEOUT_SECONDS * 1000,
    preview: (pdf) => renderPdfPreview(pdf),
    prefetch,
  });
  return startConsumer(def, ctx);
}
