import { randomUUID } from 'node:crypto';
import type { Transaction } from 'kysely';
import { createEvent } from '../../broker/events.js';
import { enqueueEvents, signalOutbox } from '../../broker/outbox.js';
import { RetryableError } from '../../errors.js';
import type { Db, Database } from '../database.js';
import { LOCK_BUSY, withNamedLock } from '../named-lock.js';
import type { JobRunsTable, SchedulesTable } from '../tables/schedules.table.js';

/** How a run came about. */
export type RunTrigger = 'schedule' | 'catch-up' | 'manual';

/** A run still `running` whose heartbeat is older than this is taken for dead (its process stopped). */
export const RUN_STALE_MS = 60_000;
/** A run still `queued` after this long is no longer waited for by "run now" (no jobs consumer took it). */
export const QUEUED_STALE_MS = 10 * 60_000;

/** One run to record and announce in the caller's transaction. */
export interface NewRun {
  job: string;
  kind: string;
  dueAt: Date | null;
  trigger: RunTrigger;
}

/**
 * Records a run (`queued`) and enqueues its `schedule.fired` in the caller's transaction. Returns the
 * run id, or null when the job already has a run for that due time (the unique key on job and due
 * time makes a second claim of the same time a no-op).
 */
export async function recordRun(trx: Transaction<Database>, run: NewRun, now: Date): Promise<string | null> {
  const id = randomUUID();
  const result = await trx
    .insertInto('job_runs')
    .ignore()
    .values({
      id,
      job: run.job,
      kind: run.kind,
      due_at: run.dueAt,
      trigger: run.trigger,
      status: 'queued',
      detail: null,
      queued_at: now,
      started_at: null,
      finished_at: null,
      heartbeat_at: null,
    })
    .executeTakeFirst();
  if (Number(result.numInsertedOrUpdatedRows ?? 0) === 0) return null;
  const event = createEvent(
    'schedule.fired',
    {
      runId: id,
      job: run.job,
      kind: run.kind,
      dueAt: run.dueAt ? run.dueAt.toISOString() : null,
      trigger: run.trigger,
    },
    { correlationId: id },
  );
  await enqueueEvents(trx, [event]);
  return id;
}

/** A job as SCHEDULES_FILE defines it, for `syncSchedules`. */
export interface ScheduleRowInput {
  name: string;
  kind: string;
  schedule: string;
  timezone: string;
  misfire: string;
}

/**
 * Makes the `schedules` rows match the jobs of this process's SCHEDULES_FILE: new jobs get their next
 * due time after `now`; a changed expression or time zone starts again from `now` (no misfire for times
 * of an expression that no longer applies); jobs no longer listed are made inactive (their history
 * stays). Schedulers starting at once take turns (a named lock: this runs once at start-up, outside any
 * claim, so a session lock is enough here).
 */
export async function syncSchedules(
  db: Db,
  jobs: readonly ScheduleRowInput[],
  nextDue: (job: ScheduleRowInput, after: Date) => Date | null,
  now: Date,
): Promise<void> {
  const synced = await withNamedLock(db, 'postroom:schedules-sync', 30, () =>
    db.transaction().execute(async (trx) => {
      const existing = new Map(
        (await trx.selectFrom('schedules').selectAll().forUpdate().execute()).map((r) => [r.name, r]),
      );
      for (const job of jobs) {
        const row = existing.get(job.name);
        if (!row) {
          await trx
            .insertInto('schedules')
            .ignore()
            .values({ ...job, next_due_at: nextDue(job, now), active: 1, created_at: now, updated_at: now })
            .execute();
          continue;
        }
        const moved = row.schedule !== job.schedule || row.timezone !== job.timezone || row.active !== 1;
        if (moved || row.kind !== job.kind || row.misfire !== job.misfire)
          await trx
            .updateTable('schedules')
            .set({
              kind: job.kind,
              misfire: job.misfire,
              schedule: job.schedule,
              timezone: job.timezone,
              active: 1,
              updated_at: now,
              ...(moved ? { next_due_at: nextDue(job, now) } : {}),
            })
            .where('name', '=', job.name)
            .execute();
      }
      const listed = jobs.map((j) => j.name);
      const gone = [...existing.values()].filter((r) => r.active === 1 && !listed.includes(r.name));
      for (const r of gone)
        await trx
          .updateTable('schedules')
          .set({ active: 0, updated_at: now })
          .where('name', '=', r.name)
          .execute();
    }),
  );
  if (synced === LOCK_BUSY)
    throw new RetryableError('SCHEDULER.SYNC_BUSY', 'Another scheduler held the schedules for 30 s');
}

/**
 * Locks the active schedules due at `now` that no other scheduler holds (`FOR UPDATE SKIP LOCKED`),
 * oldest due first. Call inside the transaction that records their runs and moves them forward.
 */
export function lockDueSchedules(
  trx: Transaction<Database>,
  now: Date,
  limit = 50,
): Promise<SchedulesTable[]> {
  return trx
    .selectFrom('schedules')
    .selectAll()
    .where('active', '=', 1)
    .where('next_due_at', '<=', now)
    .orderBy('next_due_at')
    .limit(limit)
    .forUpdate()
    .skipLocked()
    .execute();
}

/** Moves a schedule's next due time forward (in the claiming transaction). */
export async function setNextDue(
  trx: Transaction<Database>,
  name: string,
  next: Date | null,
  now: Date,
): Promise<void> {
  await trx
    .updateTable('schedules')
    .set({ next_due_at: next, updated_at: now })
    .where('name', '=', name)
    .execute();
}

/** Every schedule (active ones first, by name). */
export function listSchedules(db: Db): Promise<SchedulesTable[]> {
  return db.selectFrom('schedules').selectAll().orderBy('active', 'desc').orderBy('name').execute();
}

/** The last `limit` runs of a job, newest first. */
export function listRuns(db: Db, job: string, limit: number): Promise<JobRunsTable[]> {
  return db
    .selectFrom('job_runs')
    .selectAll()
    .where('job', '=', job)
    .orderBy('queued_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}

/** One run by id. */
export function getRun(db: Db, id: string): Promise<JobRunsTable | undefined> {
  return db.selectFrom('job_runs').selectAll().where('id', '=', id).executeTakeFirst();
}

/** True when the run still blocks a new manual run: queued or running, and not given up on. */
export function isRunActive(run: JobRunsTable, now: Date): boolean {
  if (run.status === 'queued') return now.getTime() - run.queued_at.getTime() < QUEUED_STALE_MS;
  if (run.status === 'running')
    return now.getTime() - (run.heartbeat_at ?? run.started_at ?? run.queued_at).getTime() < RUN_STALE_MS;
  return false;
}

/** Outcome of `requestManualRun`. */
export type ManualRunOutcome =
  { outcome: 'queued'; runId: string } | { outcome: 'busy'; runId: string } | { outcome: 'unknown' };

/**
 * Queues a run of `job` now (`POST /api/v1/jobs/{name}/run`), unless one is queued or running: the
 * schedule row is locked for the check, so two requests at once queue one run. The run and its
 * `schedule.fired` commit together.
 */
export async function requestManualRun(db: Db, job: string, now = new Date()): Promise<ManualRunOutcome> {
  const result = await db.transaction().execute(async (trx): Promise<ManualRunOutcome> => {
    const schedule = await trx
      .selectFrom('schedules')
      .selectAll()
      .where('name', '=', job)
      .where('active', '=', 1)
      .forUpdate()
      .executeTakeFirst();
    if (!schedule) return { outcome: 'unknown' };
    const open = await trx
      .selectFrom('job_runs')
      .selectAll()
      .where('job', '=', job)
      .where('status', 'in', ['queued', 'running'])
      .execute();
    const busy = open.find((r) => isRunActive(r, now));
    if (busy) return { outcome: 'busy', runId: busy.id };
    const runId = await recordRun(trx, { job, kind: schedule.kind, dueAt: null, trigger: 'manual' }, now);
    return { outcome: 'queued', runId: runId! };
  });
  if (result.outcome === 'queued') signalOutbox();
  return result;
}

/**
 * Marks a queued run as running (this process took it). Returns the run as it was before, so the
 * caller can tell a first delivery (`queued`) from a redelivery (`running`, `succeeded`, `failed`).
 */
export async function startRun(db: Db, id: string, now: Date): Promise<JobRunsTable | undefined> {
  return db.transaction().execute(async (trx) => {
    const run = await trx
      .selectFrom('job_runs')
      .selectAll()
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (run?.status === 'queued')
      await trx
        .updateTable('job_runs')
        .set({ status: 'running', started_at: now, heartbeat_at: now })
        .where('id', '=', id)
        .execute();
    return run;
  });
}

/** Touches a running run, so other processes see it is alive. */
export async function heartbeatRun(db: Db, id: string, now: Date): Promise<void> {
  await db.updateTable('job_runs').set({ heartbeat_at: now }).where('id', '=', id).execute();
}

/** Why a run whose process stopped mid-run is failed (the jobs consumer and the scheduler's sweep say the same). */
export const INTERRUPTED = 'JOB.INTERRUPTED: the process running it stopped before it finished';

/**
 * Fails the runs still `running` whose heartbeat is older than `staleMs`: the process running them
 * died (killed, its machine gone) and no redelivery of their event came to say so (the message was
 * parked, or no jobs consumer has read the queue since). Each is checked again as it is updated, so a
 * run that touched its heartbeat meanwhile is left alone; should its process still be alive after
 * all (cut off from MySQL for a while), its own outcome replaces this one when it finishes. Returns
 * the runs failed.
 */
export async function failAbandonedRuns(db: Db, now: Date, staleMs = RUN_STALE_MS): Promise<JobRunsTable[]> {
  const cutoff = new Date(now.getTime() - staleMs);
  const stale = await db
    .selectFrom('job_runs')
    .selectAll()
    .where('status', '=', 'running')
    .where('heartbeat_at', '<', cutoff)
    .limit(100)
    .execute();
  const failed: JobRunsTable[] = [];
  for (const run of stale) {
    const detail = `${INTERRUPTED} (no sign of life since ${run.heartbeat_at?.toISOString() ?? 'its start'})`;
    const r = await db
      .updateTable('job_runs')
      .set({ status: 'failed', detail, finished_at: now })
      .where('id', '=', run.id)
      .where('status', '=', 'running')
      .where('heartbeat_at', '<', cutoff)
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) === 1) failed.push({ ...run, status: 'failed', detail, finished_at: now });
  }
  return failed;
}

/** Records how a run ended. */
export async function finishRun(
  trx: Db | Transaction<Database>,
  id: string,
  status: 'succeeded' | 'failed',
  detail: string,
  now: Date,
): Promise<void> {
  await trx
    .updateTable('job_runs')
    .set({ status, detail: detail.slice(0, 4000), finished_at: now, heartbeat_at: now })
    .where('id', '=', id)
    .execute();
}

/** When each job last succeeded (for the seconds-since-success gauge). */
export async function lastSuccesses(db: Db): Promise<Map<string, Date>> {
  const rows = await db
    .selectFrom('job_runs')
    .select(['job', (e) => e.fn.max('finished_at').as('at')])
    .where('status', '=', 'succeeded')
    .groupBy('job')
    .execute();
  return new Map(rows.filter((r) => r.at).map((r) => [r.job, new Date(r.at as Date)]));
}
