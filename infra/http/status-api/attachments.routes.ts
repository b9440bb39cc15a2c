import { Router } from 'express';
import { getAttachment } from '../../db/repositories/status.repository.js';
import { HttpError } from '../errors.js';
import type { StatusApiDeps } from './deps.js';
import { presentAttachment } from './present.js';
import { IdParams } from './schemas.js';
import { parseRequest } from './validate.js';

/** `GET /attachments/{id}` (one attachment) and `GET /attachments/{id}/thumbnail` (its WebP thumbnail). */
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

  return router;
}
