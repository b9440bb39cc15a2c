import express, { Router } from 'express';
import { listDeadLetters } from '../../db/repositories/dead-letters.repository.js';
import { emailExists } from '../../db/repositories/status.repository.js';
import { PostroomError } from '../../errors.js';
import { HttpError } from '../errors.js';
import { decodeCursor, encodeCursor } from '../status-api/cursor.js';
import type { StatusApiDeps } from '../status-api/deps.js';
import { presentDeadLetter } from '../status-api/present.js';
import { replayAndNote } from '../status-api/replay.js';
import { requireCsrf, sessionOf } from './guard.js';
import { pageContext } from './page.js';
import type { ConsoleSessions } from './session.js';
import { renderPage } from './view.js';

const PAGE_SIZE = 25;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Dead letters (parked, or all) with a Replay button each; the replay itself is the API's. */
export function deadLetterRoutes(deps: StatusApiDeps, sessions: ConsoleSessions): Router {
  const router = Router();

  router.get('/dead-letters', async (req, res) => {
    const all = req.query['state'] === 'all';
    const cursor = typeof req.query['cursor'] === 'string' ? req.query['cursor'] : undefined;
    const filters = { state: all ? 'all' : 'parked', view: 'console' };
    let before: { parkedAt: Date; id: string } | undefined;
    let problem: string | null = null;
    if (cursor)
      try {
        const p = decodeCursor(cursor, filters);
        before = { parkedAt: p.at, id: p.id };
      } catch {
        problem = 'That page link was made for another list; showing the newest instead';
      }
    const rows = await listDeadLetters(deps.db, { includeReplayed: all, limit: PAGE_SIZE + 1, before });
    const page = rows.slice(0, PAGE_SIZE);
    const last = page.at(-1);
    const items = await Promise.all(
      page.map(async (r) => ({
        ...presentDeadLetter(r),
        // Link to the email only when there is one (a correlation id may name something else).
        emailId:
          r.correlation_id && UUID.test(r.correlation_id) && (await emailExists(deps.db, r.correlation_id))
            ? r.correlation_id
            : null,
      })),
    );
    const replayed = typeof req.query['replayed'] === 'string' ? req.query['replayed'] : null;
    const failed = typeof req.query['failed'] === 'string' ? req.query['failed'].slice(0, 300) : null;
    const notice = failed
      ? { kind: 'error' as const, text: failed }
      : replayed && UUID.test(replayed)
        ? { kind: 'ok' as const, text: `Dead letter ${replayed} was put back on its queue` }
        : problem
          ? { kind: 'error' as const, text: problem }
          : null;
    renderPage(res, 'dead-letters', pageContext(res, 'Dead letters', 'dead-letters', notice), {
      items,
      all,
      next:
        rows.length > PAGE_SIZE && last ? encodeCursor({ at: last.parked_at, id: last.id }, filters) : null,
    });
  });

  router.post(
    '/dead-letters/:id/replay',
    express.urlencoded({ extended: false, limit: 4096 }),
    requireCsrf(sessions),
    async (req, res) => {
      const id = String(req.params['id']);
      if (!UUID.test(id))
        throw new HttpError(404, 'DEAD_LETTER.NOT_FOUND', 'There is no dead letter with this id');
      const principal = sessionOf(res).principal;
      try {
        await replayAndNote(deps, id, req.log, { ...principal, via: 'console' });
      } catch (err) {
        if (err instanceof HttpError || (err instanceof PostroomError && !err.retryable)) {
          res.redirect(303, `/console/dead-letters?failed=${encodeURIComponent(err.message)}`);
          return;
        }
        throw err;
      }
      res.redirect(303, `/console/dead-letters?replayed=${id}`);
    },
  );

  return router;
}
