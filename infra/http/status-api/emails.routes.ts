import { Router } from 'express';
import { messageIdHash, normalizeMessageId } from '../../db/repositories/emails.repository.js';
import { getEmailDetail, listEmails } from '../../db/repositories/status.repository.js';
import { HttpError } from '../errors.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { StatusApiDeps } from './deps.js';
import { presentEmail, presentEmailSummary } from './present.js';
import { EmailListQuery, IdParams } from './schemas.js';
import { parseRequest } from './validate.js';

/** `GET /emails` (filters, keyset pages newest first) and `GET /emails/{id}` (one email in full). */
export function emailRoutes(deps: StatusApiDeps): Router {
  const router = Router();

  router.get('/emails', async (req, res) => {
    const q = parseRequest(EmailListQuery, req.query, 'query');
    const messageId = q.messageId === undefined ? undefined : normalizeMessageId(q.messageId);
    const filters = {
      messageId,
      status: q.status,
      from: q.from?.trim().toLowerCase(),
      since: q.since === undefined ? undefined : new Date(q.since).toISOString(),
    };
    const after = q.cursor ? decodeCursor(q.cursor, filters) : undefined;
    const rows = await listEmails(deps.db, {
      messageIdHash: messageId === undefined ? undefined : messageIdHash(messageId),
      status: filters.status,
      from: filters.from,
      since: filters.since === undefined ? undefined : new Date(filters.since),
      limit: q.limit + 1,
      after: after && { createdAt: after.at, id: after.id },
    });
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    res.json({
      items: page.map(presentEmailSummary),
      nextCursor:
        rows.length > q.limit && last ? encodeCursor({ at: last.created_at, id: last.id }, filters) : null,
    });
  });

  router.get('/emails/:id', async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'path');
    const detail = await getEmailDetail(deps.db, id);
    if (!detail) throw new HttpError(404, 'EMAIL.NOT_FOUND', `No email ${id}`);
    res.json(presentEmail(detail));
  });

  return router;
}
