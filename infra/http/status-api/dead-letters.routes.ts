import type { Static } from '@sinclair/typebox';
import { Router } from 'express';
import { replayDeadLetter } from '../../broker/dead-letters.js';
import { getDeadLetter, listDeadLetters } from '../../db/repositories/dead-letters.repository.js';
import { LOCK_BUSY, withNamedLock } from '../../db/named-lock.js';
import { emailExists } from '../../db/repositories/status.repository.js';
import { appendTimeline } from '../../db/repositories/timeline.repository.js';
import { HttpError } from '../errors.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import type { StatusApiDeps } from './deps.js';
import { presentDeadLetter } from './present.js';
import { DeadLetterListQuery, IdParams, type ReplayResult } from './schemas.js';
import { parseRequest } from './validate.js';

/** Seconds a replay waits for another replay of the same dead letter to finish. */
const REPLAY_LOCK_WAIT_SECONDS = 15;

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
    const requestedAt = new Date();
    // One replay of a dead letter at a time, across processes: the second finds it replayed (409).
    const outcome = await withNamedLock(deps.db, `postroom:replay:${id}`, REPLAY_LOCK_WAIT_SECONDS, () =>
      replayDeadLetter({ broker: deps.broker, db: deps.db }, id),
    );
    if (outcome === LOCK_BUSY)
      throw new HttpError(
        409,
        'DEAD_LETTER.REPLAY_IN_PROGRESS',
        `Dead letter ${id} is being replayed right now`,
      );
    const row = await getDeadLetter(deps.db, id);
    const replayedAt = row?.replayed_at ?? new Date();
    const consumer = row?.consumer ?? '';
    req.log?.info(
      { deadLetterId: id, consumer, eventId: row?.event_id, principal: res.locals['principal'] },
      'dead letter replayed',
    );
    const emailId = row?.correlation_id;
    if (emailId && (await emailExists(deps.db, emailId)))
      await appendTimeline(deps.db, [
        {
          emailId,
          stage: 'dead-letter',
          event: 'dead-letter.replayed',
          detail: `${row.event_type ?? 'message'} ${row.event_id ?? ''} put back on ${consumer} (was: ${row.reason.slice(0, 500)})`,
          // Before the publish, so the entry sorts before whatever the consumer then records.
          at: requestedAt,
        },
      ]).catch((err: unknown) => req.log?.warn({ err }, 'could not note the replay on the timeline'));
    const body: Static<typeof ReplayResult> = {
      id,
      outcome: 'requeued',
      consumer,
      queue: outcome.queue,
      eventId: row?.event_id ?? null,
      eventType: row?.event_type ?? null,
      replayedAt: replayedAt.toISOString(),
      message: `Put back on ${outcome.queue} as a fresh first attempt; the consumer skips it if it was already applied`,
    };
    res.status(202).json(body);
  });

  return router;
}
