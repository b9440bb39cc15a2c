import { Router, type Request, type Response } from 'express';
import { pipeline } from 'node:stream';
import { getAttachment } from '../../db/repositories/status.repository.js';
import { openAttachmentContent } from '../../drive/attachment-content.js';
import type { ByteRange } from '../../drive/file-store.js';
import { PostroomError } from '../../errors.js';
import { HttpError } from '../errors.js';
import type { StatusApiDeps } from './deps.js';
import { ContentQuery, IdParams } from './schemas.js';
import { parseRequest } from './validate.js';

/** How an error opening the bytes is answered (status and code), before any byte is sent. */
const CONTENT_ERRORS: Record<string, [number, string]> = {
  'CONTENT.NOT_STORED': [404, 'CONTENT.NOT_STORED'],
  'CONTENT.GONE': [410, 'CONTENT.GONE'],
  'FILE.GONE': [410, 'CONTENT.GONE'],
};

/** The one range asked for, `'unsatisfiable'`, or null for the whole file (no header, or one we ignore). */
function requestedRange(req: Request, size: number): ByteRange | 'unsatisfiable' | null {
  if (!req.headers.range) return null;
  const r = req.range(size, { combine: true });
  if (r === -1) return 'unsatisfiable';
  // Malformed (-2), not bytes, or several ranges: RFC 9110 lets a server answer with the whole file.
  if (r === undefined || r === -2 || r.type !== 'bytes' || r.length !== 1) return null;
  return { start: r[0]!.start, end: r[0]!.end };
}

/**
 * `GET /attachments/{id}/content`: the bytes as received, streamed from MySQL or (after retention)
 * from the filed copy, with `Range`, `ETag` (the SHA-256) and `Content-Disposition: attachment`.
 * Quarantined files answer 403 unless `?unsafe=true`, and then only as `application/octet-stream`.
 */
export function contentRoutes(deps: StatusApiDeps): Router {
  const router = Router();

  router.get('/attachments/:id/content', async (req: Request, res: Response) => {
    const { id } = parseRequest(IdParams, req.params, 'path');
    const { unsafe } = parseRequest(ContentQuery, req.query, 'query');
    const row = await getAttachment(deps.db, id);
    if (!row) throw new HttpError(404, 'ATTACHMENT.NOT_FOUND', `No attachment ${id}`);
    const quarantined = row.verdict === 'quarantined';
    if (quarantined && !unsafe)
      throw new HttpError(
        403,
        'ATTACHMENT.QUARANTINED',
        `Attachment ${id} is quarantined (${row.reason ?? 'dangerous content'}); add ?unsafe=true to download it anyway`,
      );
    const size = Number(row.size);
    const etag = `"${row.sha256}"`;
    // If-Range with another validator: the file changed for this client, so it gets all of it.
    const ifRange = req.headers['if-range'];
    const range = ifRange && ifRange !== etag ? null : requestedRange(req, size);
    if (range === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${size}`);
      throw new HttpError(416, 'RANGE.NOT_SATISFIABLE', `The attachment has ${size} bytes`);
    }
    if (req.headers['if-none-match']?.split(/\s*,\s*/).includes(etag)) {
      res.setHeader('ETag', etag);
      res.status(304).end();
      return;
    }
    let opened;
    try {
      opened = await openAttachmentContent(
        { blobs: deps.blobs, files: deps.files },
        { ...row, size },
        range ?? undefined,
      );
    } catch (err) {
      const mapped = err instanceof PostroomError ? CONTENT_ERRORS[err.code] : undefined;
      if (!mapped) throw err;
      throw new HttpError(mapped[0], mapped[1], err instanceof Error ? err.message : String(err));
    }
    // res.attachment writes RFC 6266 (filename= as ASCII, filename*= UTF-8 when the name needs it) and
    // sets a type from the extension, which the detected type then replaces.
    res.attachment(row.filename);
    res.setHeader(
      'Content-Type',
      quarantined ? 'application/octet-stream' : (row.detected_type ?? 'application/octet-stream'),
    );
    res.setHeader('ETag', etag);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('Cache-Control', 'private, no-cache');
    res.setHeader('X-Content-Origin', opened.origin);
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
      res.setHeader('Content-Length', String(range.end - range.start + 1));
    } else res.setHeader('Content-Length', String(size));
    if (req.method === 'HEAD') {
      opened.stream.destroy();
      res.end();
      return;
    }
    // Headers are out: a failure now (a damaged filed copy) can only cut the answer short.
    pipeline(opened.stream, res, (err) => {
      if (err && !res.writableFinished)
        deps.log.warn({ err, attachmentId: id, origin: opened.origin }, 'download cut short');
    });
  });

  return router;
}
