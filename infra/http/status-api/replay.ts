import { replayDeadLetter } from '../../broker/dead-letters.js';
import type { DeadLettersTable } from '../../db/tables/dead-letters.table.js';
import { getDeadLetter } from '../../db/repositories/dead-letters.repository.js';
import { LOCK_BUSY, withNamedLock } from '../../db/named-lock.js';
import { emailExists } from '../../db/repositories/status.repository.js';
import { appendTimeline } from '../../db/repositories/timeline.repository.js';
import type { Logger } from '../../logger.js';
import { HttpError } from '../errors.js';
import type { StatusApiDeps } from './deps.js';

/** Seconds a replay waits for another replay of the same dead letter to finish. */
const REPLAY_LOCK_WAIT_SECONDS = 15;

/** What a replay did. */
export interface ReplayOutcome {
  /** The queue the message went back on. */
  queue: string;
  /** The dead letter's row after the replay (undefined only if it vanished meanwhile). */
  row: DeadLettersTable | undefined;
  /** When it was marked replayed. */
  replayedAt: Date;
}

/**
 * Puts one dead letter back on its consumer's queue, one replay at a time across processes, and notes
 * it on its email's timeline. The one path of `POST /api/v1/dead-letters/{id}/replay` and the console's
 * Replay button. Throws `HttpError` 409 while another replay of it runs; `PermanentError`s
 * (`DEAD_LETTER.NOT_FOUND`, `DEAD_LETTER.ALREADY_REPLAYED`, `DEAD_LETTER.QUEUE_MISSING`) as the
 * replay finds them.
 */
export async function replayAndNote(
  deps: Pick<StatusApiDeps, 'db' | 'broker'>,
  id: string,
  log: Logger | undefined,
  principal: unknown,
): Promise<ReplayOutcome> {
  const requestedAt = new Date();
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
  const consumer = row?.consumer ?? '';
  log?.info({ deadLetterId: id, consumer, eventId: row?.event_id, principal }, 'dead letter replayed');
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
    ]).catch((err: unknown) => log?.warn({ err }, 'could not note the replay on the timeline'));
  return { queue: outcome.queue, row, replayedAt: row?.replayed_at ?? new Date() };
}
