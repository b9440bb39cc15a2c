import express, { Router } from 'express';
import { requestManualRun } from '../../db/repositories/jobs.repository.js';
import { HttpError } from '../errors.js';
import type { StatusApiDeps } from '../status-api/deps.js';
import { listJobs } from '../status-api/jobs.routes.js';
import { requireCsrf, sessionOf } from './guard.js';
import { pageContext } from './page.js';
import type { ConsoleSessions } from './session.js';
import { renderPage } from './view.js';

/** Runs shown per job. */
const RUNS_SHOWN = 5;
/** A job name as SCHEDULES_FILE allows it (so a notice never shows anything else). */
const JOB_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/**
 * Scheduled jobs (what `GET /api/v1/jobs` lists: schedule, time zone, next due time, last runs) with a
 * Run now button each; the run request is the API's (`requestManualRun`).
 */
export function jobRoutes(deps: StatusApiDeps, sessions: ConsoleSessions): Router {
  const router = Router();

  router.get('/jobs', async (req, res) => {
    const items = await listJobs(deps.db, RUNS_SHOWN);
    const named = (key: string) => {
      const v = req.query[key];
      return typeof v === 'string' && JOB_NAME.test(v) ? v : null;
    };
    const queued = named('queued');
    const busy = named('busy');
    const unknown = named('unknown');
    const notice = queued
      ? { kind: 'ok' as const, text: `Job ${queued} was queued; a scheduler runs it shortly` }
      : busy
        ? { kind: 'error' as const, text: `Job ${busy} is already running (or queued): not queued again` }
        : unknown
          ? { kind: 'error' as const, text: `There is no job ${unknown} in SCHEDULES_FILE` }
          : null;
    renderPage(res, 'jobs', pageContext(res, 'Jobs', 'jobs', notice), { items });
  });

  router.post(
    '/jobs/:name/run',
    express.urlencoded({ extended: false, limit: 4096 }),
    requireCsrf(sessions),
    async (req, res) => {
      const name = String(req.params['name']);
      if (!JOB_NAME.test(name)) throw new HttpError(404, 'JOB.NOT_FOUND', 'There is no job with this name');
      const outcome = await requestManualRun(deps.db, name);
      if (outcome.outcome === 'unknown') {
        res.redirect(303, `/console/jobs?unknown=${encodeURIComponent(name)}`);
        return;
      }
      if (outcome.outcome === 'busy') {
        res.redirect(303, `/console/jobs?busy=${encodeURIComponent(name)}`);
        return;
      }
      req.log?.info(
        { job: name, runId: outcome.runId, principal: { ...sessionOf(res).principal, via: 'console' } },
        'job run requested',
      );
      res.redirect(303, `/console/jobs?queued=${encodeURIComponent(name)}`);
    },
  );

  return router;
}
