import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import type { Db } from '../db/database.js';
import { getDeadLetter, markReplayed, parkMessage } from '../db/repositories/dead-letters.repository.js';
import { PermanentError } from '../errors.js';
import { errorTracker } from '../error-tracking.js';
import type { Logger } from '../logger.js';
import { parkedTotal } from '../metrics.js';
import { ATTEMPT_HEADER } from './consume.js';
import type { Broker } from './connection.js';
import { names } from './topology.js';

/**
 * Drains `<ns>.dead` into the `dead_letters` table. RabbitMQ puts a message there when it was
 * delivered more often than the queue's delivery limit without an ack: its consumer crashed or hung
 * on it again and again. Recording it in MySQL makes it visible and replayable like any other parked
 * message.
 */
export async function startDeadLetterCollector(deps: {
  broker: Broker;
  db: Db;
  log: Logger;
}): Promise<{ stop(): Promise<void> }> {
  const { broker, db } = deps;
  const log = deps.log.child({ module: 'dead-letter-collector' });
  let channel: Channel | null = null;
  const onMessage = async (ch: Channel, msg: ConsumeMessage) => {
    const deaths = (msg.properties.headers?.['x-death'] ?? []) as {
      queue?: string;
      reason?: string;
      count?: number;
    }[];
    // x-death lists the most recent death first (a retried message also died once in a retry queue).
    const last = deaths[0];
    const queueFull = String(last?.queue ?? msg.properties.headers?.['x-first-death-queue'] ?? 'unknown');
    const consumer = names.consumerOf(broker.namespace, queueFull);
    const why = String(last?.reason ?? msg.properties.headers?.['x-first-death-reason'] ?? 'unknown');
    let header: { id?: string; type?: string; correlationId?: string } = {};
    try {
      header = JSON.parse(msg.content.toString('utf8')) as typeof header;
    } catch {
      // Not JSON: parked with its raw body all the same.
    }
    try {
      await parkMessage(db, {
        consumer,
        queue: consumer,
        body: msg.content,
        headers: (msg.properties.headers ?? {}) as Record<string, unknown>,
        reason:
          why === 'delivery_limit'
            ? `RABBITMQ.DELIVERY_LIMIT: delivered ${broker.topology.deliveryLimit} times without an ack (the consumer crashed or hung on it)`
            : `RABBITMQ.DEAD_LETTERED: ${why}`,
        attempts: Number(msg.properties.headers?.['x-delivery-count'] ?? broker.topology.deliveryLimit),
        eventId:
          typeof header.id === 'string'
            ? header.id
            : ((msg.properties.messageId as string | undefined) ?? null),
        eventType: typeof header.type === 'string' ? header.type : null,
        correlationId: typeof header.correlationId === 'string' ? header.correlationId : null,
      });
      parkedTotal.inc({ queue: consumer, code: 'RABBITMQ.DELIVERY_LIMIT' });
      errorTracker().parked({
        consumer,
        eventType: typeof header.type === 'string' ? header.type : null,
        code: why === 'delivery_limit' ? 'RABBITMQ.DELIVERY_LIMIT' : 'RABBITMQ.DEAD_LETTERED',
        reason: why,
        correlationId: typeof header.correlationId === 'string' ? header.correlationId : null,
      });
      ch.ack(msg);
    } catch (err) {
      log.error({ err }, 'could not record a dead-lettered message; it stays in the dead queue');
      setTimeout(() => {
        try {
          ch.nack(msg, false, true);
        } catch (err2) {
          log.debug({ err: err2 }, 'nack on closed channel');
        }
      }, 2_000);
    }
  };
  const setup = async (model: ChannelModel) => {
    const ch = await model.createChannel();
    ch.on('error', (err: Error) => log.warn({ err }, 'dead-letter channel error'));
    await ch.prefetch(10);
    await ch.consume(names.deadQueue(broker.namespace), (msg) => {
      if (msg) void onMessage(ch, msg);
    });
    channel = ch;
  };
  await broker.addSetup(setup);
  return {
    async stop() {
      broker.removeSetup(setup);
      await channel?.close().catch(() => undefined);
    },
  };
}

/**
 * Puts a parked message back on its consumer's queue as a fresh first attempt, then marks it replayed.
 * A consumer that already applied it (it was parked after the effect) skips it through its inbox.
 */
export async function replayDeadLetter(
  deps: { broker: Broker; db: Db },
  id: string,
): Promise<{ queue: string }> {
  const row = await getDeadLetter(deps.db, id);
  if (!row) throw new PermanentError('DEAD_LETTER.NOT_FOUND', `No dead letter ${id}`);
  if (row.replayed_at)
    throw new PermanentError(
      'DEAD_LETTER.ALREADY_REPLAYED',
      `Dead letter ${id} was already replayed at ${row.replayed_at.toISOString()}`,
    );
  const queue = names.queue(deps.broker.namespace, row.queue);
  // A message published to a queue that does not exist is dropped without a word: check first.
  const ch = await deps.broker.createChannel();
  try {
    await ch.checkQueue(queue);
  } catch (err) {
    throw new PermanentError(
      'DEAD_LETTER.QUEUE_MISSING',
      `Queue ${queue} does not exist (is its role configured anywhere?)`,
      { cause: err },
    );
  } finally {
    await ch.close().catch(() => undefined);
  }
  await deps.broker.publish('', queue, Buffer.from(row.body, 'utf8'), {
    messageId: row.event_id ?? undefined,
    type: row.event_type ?? undefined,
    correlationId: row.correlation_id ?? undefined,
    contentType: 'application/json',
    headers: { [ATTEMPT_HEADER]: 1, 'x-postroom-replayed-from': id },
    persistent: true,
  });
  await markReplayed(deps.db, id);
  return { queue };
}
