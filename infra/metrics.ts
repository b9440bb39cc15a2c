import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The metrics registry of the process, served at /metrics. */
export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'postroom_' });

/** Events published and confirmed by RabbitMQ, by exchange and routing key. */
export const publishedTotal = new Counter({
  name: 'postroom_messages_published_total',
  help: 'Messages published and confirmed by RabbitMQ',
  labelNames: ['exchange', 'routing_key'] as const,
  registers: [registry],
});

/** Messages taken from a queue and handled, by outcome (`ok`, `duplicate`, `retried`, `parked`). */
export const consumedTotal = new Counter({
  name: 'postroom_messages_consumed_total',
  help: 'Messages consumed, by queue and outcome (ok, duplicate, retried, deferred, parked, error)',
  labelNames: ['queue', 'outcome'] as const,
  registers: [registry],
});

/** Messages sent to a retry tier. */
export const retriedTotal = new Counter({
  name: 'postroom_messages_retried_total',
  help: 'Messages sent to a retry tier, by queue and tier',
  labelNames: ['queue', 'tier'] as const,
  registers: [registry],
});

/** Messages parked as dead letters. */
export const parkedTotal = new Counter({
  name: 'postroom_messages_parked_total',
  help: 'Messages parked as dead letters, by queue and error code',
  labelNames: ['queue', 'code'] as const,
  registers: [registry],
});

/** Time spent in handlers, by queue and outcome. */
export const handlerSeconds = new Histogram({
  name: 'postroom_handler_duration_seconds',
  help: 'Handler latency, by queue and outcome',
  labelNames: ['queue', 'outcome'] as const,
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

/** Outbox rows waiting to be published, as seen by the relay's last pass. */
export const outboxPending = new Gauge({
  name: 'postroom_outbox_pending',
  help: 'Outbox rows not yet confirmed by RabbitMQ (last relay pass)',
  registers: [registry],
});

/** Outbox relay batch latency. */
export const outboxBatchSeconds = new Histogram({
  name: 'postroom_outbox_batch_duration_seconds',
  help: 'Time to publish and mark one outbox batch',
  buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
  registers: [registry],
});

/** 1 while connected to RabbitMQ. */
export const brokerConnected = new Gauge({
  name: 'postroom_broker_connected',
  help: '1 while the process is connected to RabbitMQ',
  registers: [registry],
});

/** Channels RabbitMQ closed while the connection stayed up, reopened (and their consumers re-subscribed). */
export const channelRecoveriesTotal = new Counter({
  name: 'postroom_broker_channel_recoveries_total',
  help: 'Channels RabbitMQ closed under a live connection (a channel error or a consumer cancel) and that were reopened, by channel (publish, consumer)',
  labelNames: ['channel'] as const,
  registers: [registry],
});

/** 1 while MySQL answers. */
export const databaseUp = new Gauge({
  name: 'postroom_database_up',
  help: '1 while MySQL answered the last readiness probe',
  registers: [registry],
});

/**
 * Time from an email's arrival (`received_at`) to the moment every attachment is final and
 * `email.processed` is written. Observed by the transaction that closes the email, so a transaction
 * rolled back after it (rare: the commit itself failing) counts that email twice.
 */
export const emailProcessedSeconds = new Histogram({
  name: 'postroom_email_processed_seconds',
  help: 'Time from an email arriving to every attachment being final (email.processed)',
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400],
  registers: [registry],
});
