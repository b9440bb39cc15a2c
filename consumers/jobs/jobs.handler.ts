import type { Transaction } from 'kysely';
import type { EventOf, EventType } from '../../contracts/index.js';
import type { ConsumerDefinition, Emit } from '../../infra/broker/handler.js';
import { SUBSCRIPTIONS } from '../../infra/broker/subscriptions.js';
import type { Database, Db } from '../../infra/db/database.js';
import {
  finishRun,
  heartbeatRun,
  INTERRUPTED,
  startRun,
} from '../../infra/db/repositories/jobs.repository.js';
import { errorTracker } from '../../infra/error-tracking.js';
import { describeError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import type { JobDefinition, JobKind } from '../../infra/schedules/schedules-file.js';
import { jobDurationSeconds, jobFailuresTotal, jobRunsTotal } from './job-metrics.js';

/** What one job kind gets for one run. */
export interface JobInput {
  def: JobDefinition;
  runId: string;
  /** The due time the run stands for; null for a run asked for by hand. */
  dueAt: Date | null;
  /** When the run started. */
  startedAt: Date;
  db: Db;
  log: Logger;
  /** Builds an event caused by this run's `schedule.fired`. */
  event<U extends EventType>(type: U, data: EventOf<U>['data']): EventOf<U>;
}

/** How a run of a kind ended (a kind that fails throws instead). */
export interface JobResult {
  /** One line for the run history: what was done. */
  detail: string;
  /** `failed` records the run as failed while still committing what the kind stored (default succeeded). */
  outcome?: 'succeeded' | 'failed';
  /** Rows and events to commit with the run's outcome, in one transaction. */
  commit?: (trx: Transaction<Database>, emit: Emit) => Promise<void>;
}

/** Runs one kind of job. Throws when the run fails; the failure is recorded, and the job runs again at its next due time. */
export type JobRunner = (input: JobInput) => Promise<JobResult>;

/** What the jobs consumer needs. */
export interface JobsHandlerDeps {
  /** The jobs of SCHEDULES_FILE, by name. */
  jobs: ReadonlyMap<string, JobDefinition>;
  /** What runs each kind (a kind this process cannot run is missing). */
  runners: Partial<Record<JobKind, JobRunner>>;
  /** How often a running run is touched, in ms (default 5000). */
  heartbeatMs?: number;
  now?: () => Date;
}

/**
 * The `jobs` consumer: runs the job of each `schedule.fired`. A run is tried once: its outcome
 * (`succeeded` or `failed` with the reason) is recorded with whatever the kind commits, and a failed
 * job runs again at its next due time rather than being retried at once. A run found `running` when
 * its event comes again was cut off by a crash of the process running it: it is recorded as failed.
 */
export function createJobsHandler(deps: JobsHandlerDeps): ConsumerDefinition<'schedule.fired'> {
  const now = deps.now ?? (() => new Date());
  return {
    name: 'jobs',
    events: SUBSCRIPTIONS['jobs'],
    prefetch: 4,
    async handle(event, ctx) {
      const { runId, job } = event.data;
      const log = ctx.log.child({ job, runId });
      const before = await startRun(ctx.db, runId, now());
      if (!before) {
        log.warn('schedule.fired for a run that is not recorded; dropped');
        return;
      }
      if (before.status === 'running') {
        await ctx.commit(async (trx) => finishRun(trx, runId, 'failed', INTERRUPTED, now()));
        jobRunsTotal.inc({ job, outcome: 'failed' });
        jobFailuresTotal.inc({ job });
        log.warn('a run cut off by a crash is recorded as failed; the job runs again at its next due time');
        return;
      }
      if (before.status !== 'queued') return; // finished already: a redelivery

      const def = deps.jobs.get(job);
      const runner = def ? deps.runners[def.kind] : undefined;
      const started = now();
      const heartbeat = setInterval(() => {
        heartbeatRun(ctx.db, runId, now()).catch((err: unknown) =>
          log.warn({ err }, 'could not touch the run'),
        );
      }, deps.heartbeatMs ?? 5_000);
      let outcome: 'succeeded' | 'failed';
      let result: JobResult;
      try {
        if (!def) throw new Error(`JOB.UNKNOWN: ${job} is not in this process's SCHEDULES_FILE`);
        if (!runner) throw new Error(`JOB.UNSUPPORTED: this process cannot run jobs of kind ${def.kind}`);
        log.info({ kind: def.kind, trigger: event.data.trigger, dueAt: event.data.dueAt }, 'job started');
        result = await runner({
          def,
          runId,
          dueAt: event.data.dueAt ? new Date(event.data.dueAt) : null,
          startedAt: started,
          db: ctx.db,
          log,
          event: ctx.event,
        });
        outcome = result.outcome ?? 'succeeded';
      } catch (err) {
        outcome = 'failed';
        result = { detail: describeError(err) };
        log.warn({ err }, 'job failed; it runs again at its next due time');
        errorTracker().jobFailed({ job, kind: def?.kind ?? event.data.kind, error: err });
      } finally {
        clearInterval(heartbeat);
      }
      await ctx.commit(async (trx, emit) => {
        await result.commit?.(trx, emit);
        await finishRun(trx, runId, outcome, result.detail, now());
      });
      const seconds = (now().getTime() - started.getTime()) / 1000;
      jobRunsTotal.inc({ job, outcome });
      if (outcome === 'failed') jobFailuresTotal.inc({ job });
      jobDurationSeconds.observe({ job }, Math.max(0, seconds));
      if (outcome === 'succeeded') log.info({ detail: result.detail, seconds }, 'job succeeded');
      else if (result.outcome === 'failed') {
        log.warn({ detail: result.detail }, 'job failed; it runs again at its next due time');
        errorTracker().jobFailed({
          job,
          kind: def?.kind ?? event.data.kind,
          error: new Error(result.detail),
        });
      }
    },
  };
}
