import type { Static } from '@sinclair/typebox';
import { Router } from 'express';
import {
  isRunActive,
  listRuns,
  listSchedules,
  requestManualRun,
} from '../../db/repositories/jobs.repository.js';
import type { Db } from '../../db/database.js';
import type { JobRunsTable } from '../../db/tables/schedules.table.js';
import { HttpError } from '../errors.js';
import type { StatusApiDeps } from './deps.js';
import { JobListQuery, JobNameParams, type Job, type JobRun, type RunRequested } from './jobs.schemas.js';
import { parseRequest } from './validate.js';

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function presentRun(r: JobRunsTable): Static<typeof JobRun> {
  return {
    id: r.id,
    trigger: r.trigger as Static<typeof JobRun>['trigger'],
    dueAt: iso(r.due_at),
    status: r.status as Static<typeof JobRun>['status'],
    detail: r.detail,
    queuedAt: r.queued_at.toISOString(),
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
  };
}

/**
 * Every job with its next due time and its last `runs` runs, as `GET /jobs` answers them (the
 * console's Jobs page shows the same).
 */
export async function listJobs(db: Db, runs: number, now = new Date()): Promise<Static<typeof Job>[]> {
  const items: Static<typeof Job>[] = [];
  for (const s of await listSchedules(db)) {
    const recent = await listRuns(db, s.name, Math.max(runs, 5));
    items.push({
      name: s.name,
      kind: s.kind,
      schedule: s.schedule,
      timezone: s.timezone,
      misfire: s.misfire as Static<typeof Job>['misfire'],
      active: s.active === 1,
      nextDueAt: s.active === 1 ? iso(s.next_due_at) : null,
      running: recent.some((r) => isRunActive(r, now)),
      lastRuns: recent.slice(0, runs).map(presentRun),
    });
  }
  return items;
}

/** `GET /jobs` (every job, its next due time and last runs) and `POST /jobs/{name}/run` (run one now). */
export function jobRoutes(deps: StatusApiDeps): Router {
  const router = Router();

  router.get('/jobs', async (req, res) => {
    const q = parseRequest(JobListQuery, req.query, 'query');
    res.json({ items: await listJobs(deps.db, q.runs) });
  });

  router.post('/jobs/:name/run', async (req, res) => {
    const { name } = parseRequest(JobNameParams, req.params, 'path');
    const outcome = await requestManualRun(deps.db, name);
    if (outcome.outcome === 'unknown')
      throw new HttpError(404, 'JOB.NOT_FOUND', `No job ${name} in SCHEDULES_FILE`);
    if (outcome.outcome === 'busy')
      throw new HttpError(
        409,
        'JOB.RUNNING',
        `Job ${name} is already queued or running (run ${outcome.runId})`,
      );
    req.log?.info(
      { job: name, runId: outcome.runId, principal: res.locals['principal'] },
      'job run requested',
    );
    const body: Static<typeof RunRequested> = {
      job: name,
      runId: outcome.runId,
      status: 'queued',
      message: 'Queued; a scheduler process runs it shortly (GET /api/v1/jobs shows its outcome)',
    };
    res.status(202).json(body);
  });

  return router;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const common = {
  '401': { $ref: '#/components/responses/Unauthorized' },
  '429': { $ref: '#/components/responses/TooManyRequests' },
  '500': { $ref: '#/components/responses/InternalError' },
  '503': { $ref: '#/components/responses/Unavailable' },
};

/** OpenAPI paths of the jobs API. */
export function jobsApiPaths(
  parameters: (schema: typeof JobListQuery | typeof JobNameParams, where: 'query' | 'path') => unknown,
): Record<string, unknown> {
  return {
    '/api/v1/jobs': {
      get: {
        operationId: 'listJobs',
        tags: ['jobs'],
        summary: 'Scheduled jobs with their schedule, next due time and last runs (time, outcome, detail)',
        parameters: parameters(JobListQuery, 'query'),
        responses: {
          '200': { description: 'Every job', content: { 'application/json': { schema: ref('JobList') } } },
          '400': { $ref: '#/components/responses/BadRequest' },
          ...common,
        },
      },
    },
    '/api/v1/jobs/{name}/run': {
      post: {
        operationId: 'runJob',
        tags: ['jobs'],
        summary: 'Runs a job now; a second call while it is queued or running gets 409',
        parameters: parameters(JobNameParams, 'path'),
        responses: {
          '202': {
            description: 'Queued; a scheduler process runs it shortly',
            content: { 'application/json': { schema: ref('RunRequested') } },
          },
          '400': { $ref: '#/components/responses/BadRequest' },
          '404': { $ref: '#/components/responses/NotFound' },
          '409': { $ref: '#/components/responses/Conflict' },
          '413': { $ref: '#/components/responses/PayloadTooLarge' },
          ...common,
        },
      },
    },
  };
}
