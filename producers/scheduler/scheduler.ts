import { signalOutbox } from '../../infra/broker/outbox.js';
import type { Db } from '../../infra/db/database.js';
import {
  lockDueSchedules,
  recordRun,
  setNextDue,
  syncSchedules,
  type RunTrigger,
} from '../../infra/db/repositories/jobs.repository.js';
import type { SchedulesTable } from '../../infra/db/tables/schedules.table.js';
import type { Logger } from '../../infra/logger.js';
import { cronOf, type JobDefinition, type MisfirePolicy } from '../../infra/schedules/schedules-file.js';
import { scheduledRunsTotal } from './scheduler-metrics.js';

/** Most catch-up runs of one job at once under `misfire: all` (SPEC.md). */
export const MAX_CATCH_UP = 100;

/**
 * How late a due time may be claimed and still count as on time, in ms. A due time found later than
 * this was missed (no scheduler ran, or all were stuck) and follows the job's misfire policy.
 */
export const DEFAULT_GRACE_MS = 30_000;

/** Options of the scheduler. */
export interface SchedulerOptions {
  db: Db;
  log: Logger;
  /** The jobs of SCHEDULES_FILE. */
  jobs: readonly JobDefinition[];
  /** The clock (tests move it by hand). */
  now?: () => Date;
  /** How often due schedules are looked for, in ms (default 1000). */
  tickMs?: number;
  /** See {@link DEFAULT_GRACE_MS}. */
  graceMs?: number;
}

/** A due time to run and why. */
export interface DueRun {
  dueAt: Date;
  trigger: RunTrigger;
}

/**
 * Which of the due times from `from` (the schedule's unclaimed next due time) up to `now` run:
 * those at most `graceMs` late always do; the older ones were missed, and the policy decides:
 * `skip` none, `once` the latest, `all` every one (the latest {@link MAX_CATCH_UP}).
 */
export function dueRuns(
  row: Pick<SchedulesTable, 'schedule' | 'timezone' | 'next_due_at'>,
  policy: MisfirePolicy,
  now: Date,
  graceMs: number,
): DueRun[] {
  if (!row.next_due_at || row.next_due_at > now) return [];
  const from = row.next_due_at.getTime();
  // croner counts back from `now` (a run at `now` itself counts): the newest due times first.
  const times = cronOf(row)
    .previousRuns(MAX_CATCH_UP + 1 + Math.ceil(graceMs / 1000), new Date(now.getTime() + 1))
    .filter((d) => d.getTime() >= from && d.getTime() <= now.getTime())
    .reverse();
  const onTime = times.filter((d) => now.getTime() - d.getTime() <= graceMs);
  const missed = times.filter((d) => now.getTime() - d.getTime() > graceMs);
  const catchUp = policy === 'all' ? missed.slice(-MAX_CATCH_UP) : policy === 'once' ? missed.slice(-1) : [];
  return [
    ...catchUp.map((dueAt) => ({ dueAt, trigger: 'catch-up' as const })),
    ...onTime.map((dueAt) => ({ dueAt, trigger: 'schedule' as const })),
  ];
}

/** A running scheduler. */
export interface Scheduler {
  /** Claims what is due now (the timer calls it; tests call it after moving the clock). */
  tick(): Promise<number>;
  /** Stops the timer and waits for a tick in progress. */
  stop(): Promise<void>;
}

/**
 * Claims due times in MySQL so that any number of schedulers run each due time once: in one
 * transaction, the due `schedules` rows no other scheduler holds are locked (`FOR UPDATE SKIP LOCKED`),
 * each due time gets a `job_runs` row and a `schedule.fired` in the outbox, and the row's next due time
 * moves past `now`. A scheduler that dies mid-transaction rolls back and the next one claims the time.
 * (`GET_LOCK` would not do: it belongs to a pooled session, not to the transaction.)
 */
export async function startScheduler(opts: SchedulerOptions): Promise<Scheduler> {
  const { db, jobs } = opts;
  const now = opts.now ?? (() => new Date());
  const graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
  const log = opts.log.child({ module: 'scheduler' });
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const nextAfter = (job: Pick<JobDefinition, 'schedule' | 'timezone'>, after: Date) =>
    cronOf(job).nextRun(after);

  await syncSchedules(
    db,
    jobs.map((j) => ({
      name: j.name,
      kind: j.kind,
      schedule: j.schedule,
      timezone: j.timezone,
      misfire: j.misfire,
    })),
    nextAfter,
    now(),
  );

  const tick = async (): Promise<number> => {
    const at = now();
    const fired = await db.transaction().execute(async (trx) => {
      let count = 0;
      for (const row of await lockDueSchedules(trx, at)) {
        // A job another replica's SCHEDULES_FILE has and ours lacks is left to that replica.
        if (!byName.has(row.name)) continue;
        const runs = dueRuns(row, row.misfire as MisfirePolicy, at, graceMs);
        const missed = Math.max(0, countBetween(row, at) - runs.length);
        for (const run of runs) {
          const id = await recordRun(
            trx,
            { job: row.name, kind: row.kind, dueAt: run.dueAt, trigger: run.trigger },
            at,
          );
          if (id) {
            count++;
            scheduledRunsTotal.inc({ job: row.name, trigger: run.trigger });
          }
        }
        if (missed > 0) {
          scheduledRunsTotal.inc({ job: row.name, trigger: 'skipped' }, missed);
          log.warn(
            { job: row.name, missed, misfire: row.misfire },
            'due times were missed while no scheduler ran',
          );
        }
        await setNextDue(trx, row.name, nextAfter(row, at), at);
      }
      return count;
    });
    if (fired > 0) signalOutbox();
    return fired;
  };

  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  let stopped = false;
  const loop = () => {
    if (stopped) return;
    running = tick()
      .catch((err: unknown) => log.warn({ err }, 'could not claim due jobs; trying again'))
      .finally(() => {
        running = null;
        if (!stopped) timer = setTimeout(loop, opts.tickMs ?? 1_000);
      });
  };
  if (opts.tickMs !== 0) loop();
  log.info(
    { jobs: jobs.map((j) => ({ name: j.name, kind: j.kind, schedule: j.schedule, timezone: j.timezone })) },
    'scheduler started',
  );

  return {
    tick,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}

/** How many due times lie between a row's next due time and `now` (at most a little over 100). */
function countBetween(row: Pick<SchedulesTable, 'schedule' | 'timezone' | 'next_due_at'>, now: Date): number {
  if (!row.next_due_at) return 0;
  const from = row.next_due_at.getTime();
  return cronOf(row)
    .previousRuns(MAX_CATCH_UP + 1, new Date(now.getTime() + 1))
    .filter((d) => d.getTime() >= from).length;
}
