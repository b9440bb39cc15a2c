import type { Static } from '@sinclair/typebox';
import { Router } from 'express';
import { listDeadLetters } from '../../db/repositories/dead-letters.repository.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { StatusApiDeps } from './deps.js';
import { presentDeadLetter } from './present.js';
import { replayAndNote } from './replay.js';
import { DeadLetterListQuery, IdParams, type ReplayResult } from './schemas.js';
import { parseRequest } from './validate.js';

/** `GET /dead-letters` (newest first, keyset pages) and `POST /dead-letters/{id}/replay`. */
export function deadLetterRoutes(deps: StatusApiDeps): Router {
  const router = Router();

  router.get('/dead-letters', async (req, res) => {
    const q = parseRequest(DeadLetterListQuery, req.query, 'query');
    const filters = { state: q.state, consumer: q.consumer };
    const before = q.cursor ? decodeCursor(q.cursor, filters) : undefined;
    const rows = await listDeadLetters(deps.db, {
      includeReplayed: q.state === 'all',
      consumer: q.consumer,
      limit: q.limit + 1,
      before: before && { parkedAt: before.at, id: before.id },
    });
    const page = rows.slice(0, q.limit);
    const last = page.at(-1);
    res.json({
      items: page.map(presentDeadLetter),
      nextCursor:
        rows.length > q.limit && last ? encodeCursor({ at: last.parked_at, id: last.id }, filters) : null,
    });
  });

  router.post('/dead-letters/:id/replay', async (req, res) => {
    const { id } = parseRequest(IdParams, req.params, 'path');
    const { queue, row, replayedAt } = await replayAndNote(deps, id, req.log, res.locals['principal']);
    const consumer = row?.consumer ?? '';
    const body: Static<typeof ReplayResult> = {
      id,
      outcome: 'requeued',
      consumer,
      queue,
      eventId: row?.event_id ?? null,
      eventType: row?.event_type ?? null,
      replayedAt: replayedAt.toISOString(),
      message: `Put back on ${queue} as a fresh first attempt; the consumer skips it if it was already applied`,
    };
    res.status(202).json(body);
  });

  return router;
}
