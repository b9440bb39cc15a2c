import { failAbandonedRuns } from '../../infra/db/repositories/jobs.repository.js';
import type { Db } from '../../infra/db/database.js';
import { errorTracker } from '../../infra/error-tracking.js';
import type { Logger } from '../../infra/logger.js';
import { jobFailuresTotal, jobRunsTotal } from './job-metrics.js';

/** Options of `watchAbandonedRuns`. */
export interface AbandonedRunsOptions {
  db: Db;
  log: Logger;
  /** The clock (tests move it by hand). */
  now?: () => Date;
  /** How often to look, in ms (default 10 000; 0: only when `sweep` is called). */
  everyMs?: number;
  /** A run without a heartbeat for this long is taken for dead, in ms (default `RUN_STALE_MS`, a minute). */
  staleMs?: number;
}

/** A running watch. */
export interface AbandonedRunsWatch {
  /** Fails the abandoned runs now; returns how many. */
  sweep(): Promise<number>;
  /** Stops the timer and waits for a sweep in progress. */
  stop(): Promise<void>;
}

/**
 * Fails the runs left `running` by a process that died mid-run (`failAbandonedRuns`: no heartbeat for
 * a minute) when their event did not come back to the jobs consumer to say so (it was parked, or the
 * queue purged). Such a run counts as a failure of its job like any other (metrics, error tracking).
 * Every scheduler process watches; a run is failed by one of them, as the update checks it again.
 */
export function watchAbandonedRuns(opts: AbandonedRunsOptions): AbandonedRunsWatch {
  const now = opts.now ?? (() => new Date());
  const log = opts.log.child({ module: 'jobs' });
  const sweep = async (): Promise<number> => {
    const failed = await failAbandonedRuns(opts.db, now(), opts.staleMs);
    for (const run of failed) {
      jobRunsTotal.inc({ job: run.job, outcome: 'failed' });
      jobFailuresTotal.inc({ job: run.job });
      log.warn(
        { job: run.job, runId: run.id, heartbeatAt: run.heartbeat_at },
        'a run whose process stopped mid-run is recorded as failed; the job runs again at its next due time',
      );
      errorTracker().jobFailed({ job: run.job, kind: run.kind, error: new Error(run.detail ?? '') });
    }
    return failed.length;
  };
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<unknown> | null = null;
  if (opts.everyMs !== 0)
    timer = setInterval(() => {
      running ??= sweep()
        .catch((err: unknown) => log.warn({ err }, 'could not look for abandoned runs; trying again'))
        .finally(() => (running = null));
    }, opts.everyMs ?? 10_000);
  return {
    sweep,
    async stop() {
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
