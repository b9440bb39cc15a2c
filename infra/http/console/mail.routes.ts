import { Router, type Request } from 'express';
import {
  getAttachment,
  getEmailDetail,
  listEmails,
  readStats,
} from '../../db/repositories/status.repository.js';
import { HttpError } from '../errors.js';
import { decodeCursor, encodeCursor } from '../status-api/cursor.js';
import type { StatusApiDeps } from '../status-api/deps.js';
import { presentEmail, presentEmailSummary } from '../status-api/present.js';
import { pageContext } from './page.js';
import { renderPage } from './view.js';

/** Mail on one page of the list. */
const PAGE_SIZE = 25;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The mail list's filters as the form sends them: empty fields mean no filter. */
export interface MailFilters {
  status?: 'processing' | 'done';
  from?: string;
  q?: string;
}

/** Reads the filters from a query string; nonsense is dropped with a note rather than refused. */
function readFilters(req: Request): { filters: MailFilters; cursor?: string; problems: string[] } {
  const one = (name: string) => {
    const v = req.query[name];
    return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
  };
  const problems: string[] = [];
  const filters: MailFilters = {};
  const status = one('status');
  if (status === 'processing' || status === 'done') filters.status = status;
  else if (status) problems.push('Status must be processing or done');
  const from = one('from');
  if (from && from.length <= 320) filters.from = from.toLowerCase();
  else if (from) problems.push('Sender is too long');
  const q = one('q');
  if (q && q.length <= 200) filters.q = q;
  else if (q) problems.push('Search text is too long (200 characters at most)');
  const cursor = one('cursor');
  return { filters, cursor: cursor && cursor.length <= 500 ? cursor : undefined, problems };
}

/** Verdicts whose bytes the console offers for download: only files judged harmless. */
const DOWNLOADABLE = new Set(['accepted']);

/** The mail list, one email, an attachment's thumbnail and content, and the live processing count. */
export function mailRoutes(deps: StatusApiDeps): Router {
  const router = Router();

  router.get('/', async (req, res) => {
    const { filters, cursor, problems } = readFilters(req);
    let after: { createdAt: Date; id: string } | undefined;
    if (cursor) {
      try {
        const p = decodeCursor(cursor, { ...filters, view: 'console' });
        after = { createdAt: p.at, id: p.id };
      } catch {
        problems.push('That page link was made for other filters; showing the newest mail instead');
      }
    }
    const [rows, stats] = await Promise.all([
      listEmails(deps.db, {
        status: filters.status,
        from: filters.from,
        text: filters.q,
        limit: PAGE_SIZE + 1,
        after,
      }),
      readStats(deps.db),
    ]);
    const page = rows.slice(0, PAGE_SIZE);
    const last = page.at(-1);
    const next =
      rows.length > PAGE_SIZE && last
        ? encodeCursor({ at: last.created_at, id: last.id }, { ...filters, view: 'console' })
        : null;
    renderPage(
      res,
      'mail',
      pageContext(res, 'Mail', 'mail', problems.length ? { kind: 'error', text: problems.join('. ') } : null),
      {
        items: page.map(presentEmailSummary),
        filters,
        next,
        paged: Boolean(after),
        processing: stats.emails.counts['processing'] ?? 0,
      },
    );
  });

  router.get('/live', async (_req, res) => {
    const stats = await readStats(deps.db);
    res.json({ processing: stats.emails.counts['processing'] ?? 0, at: new Date().toISOString() });
  });

  router.get('/emails/:id', async (req, res) => {
    const id = String(req.params['id']);
    const detail = UUID.test(id) ? await getEmailDetail(deps.db, id) : undefined;
    if (!detail) throw new HttpError(404, 'EMAIL.NOT_FOUND', 'There is no email with this id');
    const email = presentEmail(detail);
    renderPage(res, 'email', pageContext(res, email.subject || '(no subject)', 'mail'), {
      email,
      downloadable: [...DOWNLOADABLE],
    });
  });

  router.get('/attachments/:id/thumbnail', async (req, res) => {
    const id = String(req.params['id']);
    const row = UUID.test(id) ? await getAttachment(deps.db, id) : undefined;
    if (!row?.thumbnail_sha256 || !(await deps.blobs.stat(row.thumbnail_sha256)))
      throw new HttpError(404, 'THUMBNAIL.NOT_FOUND', 'This attachment has no thumbnail');
    const bytes = await deps.blobs.read(row.thumbnail_sha256);
    res.setHeader('Cache-Control', 'private, max-age=86400');
    res.type('image/webp').send(bytes);
  });

  router.get('/attachments/:id/content', async (req, res) => {
    const id = String(req.params['id']);
    const row = UUID.test(id) ? await getAttachment(deps.db, id) : undefined;
    if (!row) throw new HttpError(404, 'ATTACHMENT.NOT_FOUND', 'There is no attachment with this id');
    if (!DOWNLOADABLE.has(row.verdict))
      throw new HttpError(
        403,
        'ATTACHMENT.NOT_DOWNLOADABLE',
        `This attachment is ${row.verdict}: the console does not hand out its bytes`,
      );
    if (!row.stored || !(await deps.blobs.stat(row.sha256)))
      throw new HttpError(
        404,
        'ATTACHMENT.CONTENT_GONE',
        'The bytes of this attachment are no longer stored',
      );
    const stream = await deps.blobs.open(row.sha256);
    // Always a download, never rendered here: an accepted file may still be HTML or SVG.
    const ascii = row.filename.replace(/[^\x20-\x7e]|["\\]/g, '_');
    res.setHeader(
      'Content-Disposition',
      `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(row.filename)}`,
    );
    res.setHeader('Content-Security-Policy', "sandbox; default-src 'none'");
    res.setHeader('Content-Length', String(row.size));
    res.type('application/octet-stream');
    stream.on('error', (err) => {
      req.log?.warn({ err, attachmentId: id }, 'attachment download broke off');
      res.destroy(err);
    });
    stream.pipe(res);
  });

  return router;
}
