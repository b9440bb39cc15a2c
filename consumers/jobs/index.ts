import { startConsumer } from '../../infra/broker/consume.js';
import { lastSuccesses } from '../../infra/db/repositories/jobs.repository.js';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import { loadSchedulesFile, type JobDefinition, type JobKind } from '../../infra/schedules/schedules-file.js';
import { watchAbandonedRuns } from './abandoned-runs.js';
import { watchLastSuccesses } from './job-metrics.js';
import { createJobsHandler, type JobRunner } from './jobs.handler.js';
import { defaultRunners, type RunnerOptions } from './runners.js';

/** Overrides for tests. */
export interface JobsRoleOptions extends RunnerOptions {
  /** Jobs instead of SCHEDULES_FILE. */
  jobs?: readonly JobDefinition[];
  /** Runners instead of (or besides) the built-in ones. */
  runners?: Partial<Record<JobKind, JobRunner>>;
  now?: () => Date;
}

/**
 * Starts the jobs consumer (role `scheduler`): runs the job of each `schedule.fired`, and fails the
 * runs a dead process left `running` (`watchAbandonedRuns`). Null, with a log line, when
 * SCHEDULES_FILE is not set.
 */
export async function startJobs(ctx: RoleContext, opts: JobsRoleOptions = {}): Promise<RoleHandle | null> {
  const file = ctx.config.SCHEDULES_FILE;
  if (!file && !opts.jobs) return null;
  const jobs = opts.jobs ?? loadSchedulesFile(file!);
  watchLastSuccesses(
    () => lastSuccesses(ctx.db),
    jobs.map((j) => j.name),
  );
  const def = createJobsHandler({
    jobs: new Map(jobs.map((j) => [j.name, j])),
    runners: { ...(await defaultRunners(ctx, opts)), ...opts.runners },
    now: opts.now,
  });
  const consumer = await startConsumer(def, ctx);
  const abandoned = watchAbandonedRuns({ db: ctx.db, log: ctx.log, now: opts.now });
  return {
    stop: async () => {
      await abandoned.stop();
      await consumer.stop();
    },
  };
}
