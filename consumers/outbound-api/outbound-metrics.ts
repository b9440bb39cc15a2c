import { Counter, Histogram } from 'prom-client';
import { registry } from '../../infra/metrics.js';

/** Hook call attempts, by hook and outcome (`succeeded`, `retry`, `failed`). */
export const outboundAttemptsTotal = new Counter({
  name: 'postroom_outbound_attempts_total',
  help: 'Outbound hook call attempts, by hook and outcome (succeeded, retry, failed)',
  labelNames: ['hook', 'outcome'] as const,
  registers: [registry],
});

/** Duration of hook call attempts, lookup included. */
export const outboundAttemptSeconds = new Histogram({
  name: 'postroom_outbound_attempt_duration_seconds',
  help: 'Outbound hook call attempt latency, lookup included, by hook',
  labelNames: ['hook'] as const,
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  registers: [registry],
});

/** Calls not made because the host's circuit was open or the host asked to wait. */
export const outboundDeferredTotal = new Counter({
  name: 'postroom_outbound_deferred_total',
  help: 'Outbound calls deferred without a request (circuit open, or Retry-After still running), by hook',
  labelNames: ['hook'] as const,
  registers: [registry],
});
