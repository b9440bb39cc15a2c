import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import { loadSchedulesFile } from '../../infra/schedules/schedules-file.js';
import { startScheduler, type SchedulerOptions } from './scheduler.js';

/** Overrides for tests. */
export type SchedulerRoleOptions = Partial<Pick<SchedulerOptions, 'now' | 'tickMs' | 'graceMs' | 'jobs'>>;

/**
 * Starts the scheduler (role `scheduler`): validates SCHEDULES_FILE (a `ConfigError` names each
 * problem), then claims due times. Null, with a log line, when SCHEDULES_FILE is not set.
 */
export async function startSchedulerRole(
  ctx: RoleContext,
  opts: SchedulerRoleOptions = {},
): Promise<RoleHandle | null> {
  const file = ctx.config.SCHEDULES_FILE;
  if (!file && !opts.jobs) {
    ctx.log.info('scheduler role: SCHEDULES_FILE is not set; no jobs are scheduled');
    return null;
  }
  const jobs = opts.jobs ?? loadSchedulesFile(file!);
  const scheduler = await startScheduler({ db: ctx.db, log: ctx.log, ...opts, jobs });
  return { stop: () => scheduler.stop() };
}
