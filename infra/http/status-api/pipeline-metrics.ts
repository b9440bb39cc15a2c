import { Gauge } from 'prom-client';
import { registry } from '../../metrics.js';

/** What the pipeline gauges show: read from MySQL and RabbitMQ when Prometheus scrapes. */
export interface PipelineSnapshot {
  /** Age in seconds of the oldest item waiting, per stage (`email`, `analysis`, `drive`, ...). */
  oldestPendingSeconds: Record<string, number | null>;
  /** Per consumer queue: messages ready and consumers attached; null when RabbitMQ did not answer. */
  queues: Array<{ consumer: string; messages: number; consumers: number }> | null;
  /** Messages in the dead-letter queue; null when unknown. */
  deadQueueMessages: number | null;
}

let source: (() => Promise<PipelineSnapshot>) | null = null;
let cached: { at: number; snapshot: Promise<PipelineSnapshot | null> } | null = null;
const CACHE_MS = 5_000;

/** One read per scrape (the gauges below share it), at most every 5 s. */
function snapshot(): Promise<PipelineSnapshot | null> {
  if (!source) return Promise.resolve(null);
  const now = Date.now();
  if (!cached || now - cached.at > CACHE_MS) {
    const read = source;
    cached = { at: now, snapshot: read().catch(() => null) };
  }
  return cached.snapshot;
}

/** Age of the oldest item waiting in each stage (the api role reads it from MySQL). */
export const oldestPendingSeconds = new Gauge({
  name: 'postroom_pipeline_oldest_pending_seconds',
  help: 'Age of the oldest item waiting in each stage (email, analysis, drive, outbound, notify, outbox)',
  labelNames: ['stage'] as const,
  registers: [registry],
  async collect() {
    const s = await snapshot();
    this.reset();
    for (const [stage, age] of Object.entries(s?.oldestPendingSeconds ?? {})) this.set({ stage }, age ?? 0);
  },
});

/** Messages ready in each consumer's queue. */
export const queueMessages = new Gauge({
  name: 'postroom_queue_messages',
  help: "Messages waiting in each consumer's queue (RabbitMQ, read by the api role)",
  labelNames: ['consumer'] as const,
  registers: [registry],
  async collect() {
    const s = await snapshot();
    this.reset();
    for (const q of s?.queues ?? []) this.set({ consumer: q.consumer }, q.messages);
  },
});

/** Consumers attached to each consumer's queue: 0 while messages wait means nobody will take them. */
export const queueConsumers = new Gauge({
  name: 'postroom_queue_consumers',
  help: "Consumers attached to each consumer's queue (RabbitMQ, read by the api role)",
  labelNames: ['consumer'] as const,
  registers: [registry],
  async collect() {
    const s = await snapshot();
    this.reset();
    for (const q of s?.queues ?? []) this.set({ consumer: q.consumer }, q.consumers);
  },
});

/** Messages parked in the dead-letter queue. */
export const deadQueueMessages = new Gauge({
  name: 'postroom_dead_letter_queue_messages',
  help: 'Messages in the dead-letter queue not yet collected into MySQL',
  registers: [registry],
  async collect() {
    const s = await snapshot();
    this.reset();
    if (s?.deadQueueMessages != null) this.set(s.deadQueueMessages);
  },
});

/** Makes the gauges read from `read` (the api role at start); returns the undo (at stop). */
export function servePipelineMetrics(read: () => Promise<PipelineSnapshot>): () => void {
  source = read;
  cached = null;
  return () => {
    if (source === read) source = null;
    cached = null;
  };
}
