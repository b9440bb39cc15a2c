import { Router } from 'express';
import { readStats, type StageCounts } from '../../db/repositories/status.repository.js';
import type { StatusApiDeps } from '../status-api/deps.js';
import { pageContext } from './page.js';
import { renderPage } from './view.js';

/** One bar of the queue chart. */
export interface Bar {
  label: string;
  value: number;
  /** Width in percent of the longest bar (0-100). */
  percent: number;
}

/** Bars scaled to the largest value (an empty chart when everything is 0). */
export function bars(items: { label: string; value: number }[]): Bar[] {
  const max = Math.max(0, ...items.map((i) => i.value));
  return items.map((i) => ({ ...i, percent: max > 0 ? Math.round((i.value / max) * 1000) / 10 : 0 }));
}

/** One part of a stage's stacked bar. */
export interface Segment {
  state: string;
  value: number;
  /** Where it starts and how wide it is, in percent of the whole bar. */
  offset: number;
  percent: number;
}

/** A stage's counts as parts of one bar (states with no rows left out). */
export function segments(counts: Record<string, number>): Segment[] {
  const entries = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .sort(([a], [b]) => a.localeCompare(b));
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  let offset = 0;
  return entries.map(([state, value]) => {
    const percent = (value / total) * 100;
    const s = { state, value, offset, percent };
    offset += percent;
    return s;
  });
}

/** Counts per stage, queue depths with a bar chart, the oldest pending item, dead letters, the outbox. */
export function statsRoutes(deps: StatusApiDeps): Router {
  const router = Router();
  router.get('/stats', async (_req, res) => {
    const [db, depths] = await Promise.all([readStats(deps.db), deps.queueDepths()]);
    const now = Date.now();
    const stage = (name: string, s: StageCounts | null) =>
      s && {
        name,
        counts: Object.entries(s.counts).sort(([a], [b]) => a.localeCompare(b)),
        segments: segments(s.counts),
        oldestSeconds: s.oldestPendingSince ? (now - s.oldestPendingSince.getTime()) / 1000 : null,
        oldestSince: s.oldestPendingSince,
      };
    const stages = [
      stage('Emails', db.emails),
      stage('Analysis', db.stages.analysis),
      stage('Drive', db.stages.drive),
      stage('Outbound calls', db.stages.outbound),
      stage('Notifications', db.stages.notify),
    ].filter((s) => s !== null);
    let oldest: { name: string; since: Date } | null = null;
    for (const s of stages)
      if (s.oldestSince && (!oldest || s.oldestSince < oldest.since))
        oldest = { name: s.name, since: s.oldestSince };
    const queues = depths.queues?.map((q) => ({
      ...q,
      retryMessages: q.retry.reduce((n, r) => n + r.messages, 0),
    }));
    const waiting =
      (queues ?? []).some((q) => q.messages + q.retryMessages > 0) || (depths.deadQueue?.messages ?? 0) > 0;
    const chart =
      queues && waiting
        ? bars([
            ...queues.map((q) => ({ label: q.consumer, value: q.messages + q.retryMessages })),
            ...(depths.deadQueue ? [{ label: 'dead', value: depths.deadQueue.messages }] : []),
          ])
        : null;
    renderPage(res, 'stats', pageContext(res, 'Stats', 'stats'), {
      stages,
      oldest,
      queues,
      deadQueue: depths.deadQueue,
      chart,
      deadLetters: db.deadLetters,
      outbox: db.outbox,
    });
  });
  return router;
}
