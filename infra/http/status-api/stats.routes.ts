import { Router } from 'express';
import { readStats, type StageCounts } from '../../db/repositories/status.repository.js';
import type { StatusApiDeps } from './deps.js';
import type { Stats } from './schemas.js';

/** `GET /stats`: counts per stage and state, queue depths, and the age of the oldest pending item. */
export function statsRoutes(deps: StatusApiDeps): Router {
  const router = Router();
  router.get('/stats', async (_req, res) => {
    res.json(await buildStats(deps));
  });
  return router;
}

/** The body of `GET /stats` (also what the pipeline gauges of /metrics show). */
export async function buildStats(deps: StatusApiDeps): Promise<Stats> {
  const [db, depths] = await Promise.all([readStats(deps.db), deps.queueDepths()]);
  const now = Date.now();
  const age = (d: Date | null) => (d ? Math.max(0, Math.round(now - d.getTime()) / 1000) : null);
  const stage = (s: StageCounts) => ({ counts: s.counts, oldestPendingSeconds: age(s.oldestPendingSince) });
  const candidates: [string, Date | null][] = [
    ['email', db.emails.oldestPendingSince],
    ['analysis', db.stages.analysis.oldestPendingSince],
    ['drive', db.stages.drive.oldestPendingSince],
    ['outbound', db.stages.outbound.oldestPendingSince],
    ['notify', db.stages.notify.oldestPendingSince],
  ];
  let oldest: Stats['oldestPending'] = null;
  for (const [name, since] of candidates)
    if (since && (!oldest || since.getTime() < Date.parse(oldest.since)))
      oldest = { stage: name, since: since.toISOString(), ageSeconds: age(since) ?? 0 };
  const body: Stats = {
    generatedAt: new Date(now).toISOString(),
    emails: stage(db.emails),
    stages: {
      analysis: stage(db.stages.analysis),
      drive: stage(db.stages.drive),
      outbound: stage(db.stages.outbound),
      notify: stage(db.stages.notify),
    },
    oldestPending: oldest,
    deadLetters: db.deadLetters,
    outbox: { pending: db.outbox.pending, oldestPendingSeconds: age(db.outbox.oldestPendingSince) },
    ...depths,
  };
  return body;
}
