import { Counter } from 'prom-client';
import { registry } from '../../infra/metrics.js';

/** Due times claimed by this scheduler, by job and trigger (`schedule`, `catch-up`), and missed ones left out (`skipped`). */
export const scheduledRunsTotal = new Counter({
  name: 'postroom_scheduler_due_times_total',
  help: 'Due times claimed by this scheduler, by job and trigger (schedule, catch-up), and missed due times not run (skipped)',
  labelNames: ['job', 'trigger'] as const,
  registers: [registry],
});
