import { randomBytes, randomUUID } from 'node:crypto';
import { connect } from 'amqplib';
import { contracts } from '../../contracts/index.js';
import { Broker } from '../../infra/broker/connection.js';
import { startConsumer } from '../../infra/broker/consume.js';
import { createEvent } from '../../infra/broker/events.js';
import { names, type Topology } from '../../infra/broker/topology.js';
import type { Db } from '../../infra/db/database.js';
import type { Logger } from '../../infra/logger.js';
import { consumedTotal, handlerSeconds, registry } from '../../infra/metrics.js';
import { publishWindowed } from './ceiling.js';
import { histogramSeries, rate, type HistogramSummary, type MetricJson } from './stats.js';

/** The runner's figures at one prefetch. */
export interface RunnerRun {
  prefetch: number;
  messages: number;
  /** Envelope size (bytes). */
  bytes: number;
  perSecond: number;
  /** Outcomes other than `ok` (should be none). */
  notOk: number;
  /** CPU of the process running it, in cores (1.0 = one core busy): near 1 means CPU-bound. */
  cpuCores: number;
  /** Runner time per message (validation, inbox check, handler, inbox insert), from `handlerSeconds`. */
  handler: HistogramSummary | null;
}

/** The topology of the runner benchmark: one queue per prefetch tried, bound to nothing it needs. */
export function runnerTopology(namespace: string, consumers: readonly string[]): Topology {
  return {
    namespace,
    exchanges: [contracts['email.received'].exchange],
    queues: consumers.map((name) => ({ name, bindings: [] })),
    retryDelaysMs: [1_000],
    deliveryLimit: 10,
  };
}

/** A valid `email.received` envelope of about `bytes` (the subject is padded). */
function envelope(bytes: number): Buffer {
  const base = {
    emailId: randomUUID(),
    messageId: `${randomBytes(8).toString('hex')}@bench.postroom`,
    source: 'imap' as const,
    subject: '',
    from: 'sender@bench.example',
    receivedAt: new Date().toISOString(),
    attachmentCount: 1,
    warnings: [],
    chatId: null,
  };
  const empty = Buffer.byteLength(
    JSON.stringify(createEvent('email.received', base, { correlationId: base.emailId })),
  );
  const subject = 'x'.repeat(Math.max(0, Math.min(2000, bytes - empty)));
  return Buffer.from(
    JSON.stringify(createEvent('email.received', { ...base, subject }, { correlationId: base.emailId })),
  );
}

/**
 * Runs `startConsumer` (envelope and contract validation, inbox check, inbox insert, ack) with a
 * handler that does nothing over `messages` fresh events waiting in its quorum queue, once per prefetch.
 * Each run has its own queue and consumer name, so the inbox holds none of its events beforehand.
 */
export async function runnerOverhead(opts: {
  amqpUrl: string;
  namespace: string;
  db: Db;
  log: Logger;
  messages: number;
  bytes: number;
  prefetches: readonly number[];
}): Promise<RunnerRun[]> {
  const consumerNames = opts.prefetches.map((p) => `bench-noop-p${p}`);
  const topology = runnerTopology(opts.namespace, consumerNames);
  const broker = new Broker({
    url: opts.amqpUrl,
    topology,
    log: opts.log,
    connectionName: 'postroom bench runner',
  });
  await broker.start();
  const results: RunnerRun[] = [];
  try {
    for (const [i, prefetch] of opts.prefetches.entries()) {
      const name = consumerNames[i]!;
      const queue = names.queue(opts.namespace, name);
      const bodies = Array.from({ length: opts.messages }, () => envelope(opts.bytes));
      const conn = await connect(opts.amqpUrl);
      try {
        const ch = await conn.createConfirmChannel();
        await publishWindowed(ch, queue, (k) => bodies[k]!, opts.messages, 256);
        await ch.close();
      } finally {
        await conn.close().catch(() => undefined);
      }
      consumedTotal.reset();
      handlerSeconds.reset();
      const started = performance.now();
      const cpu0 = process.cpuUsage();
      const consumer = await startConsumer(
        { name, events: ['email.received'], prefetch, handle: async () => undefined },
        { broker, db: opts.db, log: opts.log },
      );
      let done = 0;
      while (done < opts.messages) {
        await new Promise((r) => setTimeout(r, 5));
        done = (await consumedTotal.get()).values
          .filter((v) => v.labels.queue === name)
          .reduce((a, v) => a + v.value, 0);
      }
      const ms = performance.now() - started;
      const cpu = process.cpuUsage(cpu0);
      await consumer.stop();
      const metrics = (await registry.getMetricsAsJSON()) as unknown as MetricJson[];
      const ok = (await consumedTotal.get()).values
        .filter((v) => v.labels.queue === name && v.labels.outcome === 'ok')
        .reduce((a, v) => a + v.value, 0);
      results.push({
        prefetch,
        messages: opts.messages,
        bytes: bodies[0]?.length ?? 0,
        perSecond: rate(opts.messages, ms),
        notOk: done - ok,
        cpuCores: (cpu.user + cpu.system) / 1000 / ms,
        handler: histogramSeries(metrics, 'postroom_handler_duration_seconds', ['queue'])[0] ?? null,
      });
    }
  } finally {
    await broker.close();
  }
  return results;
}

/**
 * What the runner does per message in CPU alone: JSON.parse and both ajv validations, timed over
 * `messages` envelopes in this process (no broker, no database). Resolves with messages per second.
 */
export function validationRate(messages: number, bytes: number): number {
  const bodies = Array.from({ length: Math.min(messages, 5_000) }, () => envelope(bytes));
  const contract = contracts['email.received'];
  const started = performance.now();
  for (const b of bodies) {
    const parsed: unknown = JSON.parse(b.toString('utf8'));
    if (!contract.validate(parsed)) throw new Error('invalid benchmark envelope');
  }
  return rate(bodies.length, performance.now() - started);
}
