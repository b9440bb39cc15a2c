import { Router } from 'express';
import { getAttachment } from '../../db/repositories/status.repository.js';
import { HttpError } from '../errors.js';
import type { StatusApiDeps } from './deps.js';
import { presentAttachment } from './present.js';
import { IdParams } from './schemas.js';
import { parseRequest } from './validate.js';

/**
 * `GET /attachments/{id}` (one attachment), `GET /attachments/{id}/thumbnail` (its WebP thumbnail) and
 * `GET /attachments/{id}/converted` (the PDF an office document was converted to).
 */
export function attachmentRoutes(deps: StatusApiDeps): Router {
  const router = Router();

  router.get('/attachments/:id', async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'path');
    const row = await getAttachment(deps.db, id);
    if (!row) throw new HttpError(404, 'ATTACHMENT.NOT_FOUND', `No attachment ${id}`);
    res.json(presentAttachment(row));
  });

  router.get('/attachments/:id/thumbnail', async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'path');
    const row = await getAttachment(deps.db, id);
    if (!row) throw new HttpError(404, 'ATTACHMENT.NOT_FOUND', `No attachment ${id}`);
    const noThumbnail = () => new HttpError(404, 'THUMBNAIL.NOT_FOUND', `Attachment ${id} has no thumbnail`);
    if (!row.thumbnail_sha256) throw noThumbnail();
    if (!(await deps.blobs.stat(row.thumbnail_sha256))) throw noThumbnail();
    const bytes = await deps.blobs.read(row.thumbnail_sha256);
    // Content-addressed: the same URL always has the same bytes while the attachment exists.
    res.setHeader('Cache-Control', 'private, max-age=86400');
    res.setHeader('ETag', `"${row.thumbnail_sha256}"`);
    res.type('image/webp').send(bytes);
  });

  router.get('/attachments/:id/converted', async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'path');
    const row = await getAttachment(deps.db, id);
    if (!row) throw new HttpError(404, 'ATTACHMENT.NOT_FOUND', `No attachment ${id}`);
    const sha = row.pdf_sha256;
    if (!sha || row.conversion_status !== 'converted') {
      const why =
        row.conversion_status === 'pending'
          ? 'its conversion is still pending'
          : row.conversion_status === 'failed'
            ? `its conversion failed: ${row.conversion_reason ?? 'no reason recorded'}`
            : 'it is not converted (not an office document, or no converter configured)';
      throw new HttpError(404, 'CONVERSION.NOT_FOUND', `Attachment ${id} has no converted PDF: ${why}`);
    }
    const info = await deps.blobs.stat(sha);
    if (!info)
      throw new HttpError(
        404,
        'CONVERSION.NOT_FOUND',
        `The converted PDF of attachment ${id} is no longer stored`,
      );
    res.setHeader('Cache-Control', 'private, max-age=86400');
    res.setHeader('ETag', `"${sha}"`);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Content-Length', String(info.size));
    res.attachment(row.pdf_filename ?? 'document.pdf');
    res.type('application/pdf');
    const stream = await deps.blobs.open(sha);
    stream.on('error', (err) => res.destroy(err));
    stream.pipe(res);
  });

  return router;
}
