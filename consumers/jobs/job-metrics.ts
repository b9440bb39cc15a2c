import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../../infra/metrics.js';

/** Runs finished by this process, by job and outcome (`succeeded`, `failed`). */
export const jobRunsTotal = new Counter({
  name: 'postroom_job_runs_total',
  help: 'Scheduled job runs finished by this process, by job and outcome (succeeded, failed)',
  labelNames: ['job', 'outcome'] as const,
  registers: [registry],
});

/** Failed runs, by job. */
export const jobFailuresTotal = new Counter({
  name: 'postroom_job_failures_total',
  help: 'Scheduled job runs that failed in this process, by job',
  labelNames: ['job'] as const,
  registers: [registry],
});

/** Run time of jobs. */
export const jobDurationSeconds = new Histogram({
  name: 'postroom_job_duration_seconds',
  help: 'Time a scheduled job run took, by job',
  labelNames: ['job'] as const,
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600],
  registers: [registry],
});

let lastSuccessSource: (() => Promise<Map<string, Date>>) | null = null;
let knownJobs: readonly string[] = [];

/**
 * Seconds since each job last succeeded, read from MySQL when scraped, so every scheduler replica
 * reports the same value whichever of them ran the job. A job that never succeeded is absent... unless
 * it is known: then it reports the seconds since the Unix epoch, which any "too long ago" alert catches.
 */
export const jobSecondsSinceSuccess = new Gauge({
  name: 'postroom_job_seconds_since_last_success',
  help: 'Seconds since the last successful run of each scheduled job (read from MySQL when scraped)',
  labelNames: ['job'] as const,
  registers: [registry],
  async collect() {
    if (!lastSuccessSource) return;
    this.reset();
    const last = await lastSuccessSource().catch(() => null);
    if (!last) return;
    const now = Date.now();
    for (const job of new Set([...knownJobs, ...last.keys()]))
      this.set({ job }, Math.max(0, Math.round((now - (last.get(job)?.getTime() ?? 0)) / 1000)));
  },
});

/** Tells the gauge where to read last successes and which jobs exist (the jobs role does, at start). */
export function watchLastSuccesses(source: () => Promise<Map<string, Date>>, jobs: readonly string[]): void {
  lastSuccessSource = source;
  knownJobs = jobs;
}
