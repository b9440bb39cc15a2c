import type { Channel } from 'amqplib';

/** One consumer's queue: its name and the routing keys (event types) bound to it, by exchange. */
export interface QueueSpec {
  /** Consumer name; the queue is `<namespace>.<name>`. */
  name: string;
  /** Bindings: short exchange name and routing key. */
  bindings: readonly { exchange: string; routingKey: string }[];
}

/**
 * The whole broker layout as data, declared at every (re)connect:
 * - a durable topic exchange `<ns>.<exchange>` per short exchange name;
 * - per consumer a durable quorum queue `<ns>.<consumer>` with a delivery limit (a message that kills
 *   its consumer again and again is dead-lettered instead of looping), dead-lettering to `<ns>.dead`;
 * - per consumer one retry queue per delay tier, `<ns>.<consumer>.retry.<i>`: messages wait there for
 *   the tier's TTL, then RabbitMQ dead-letters them straight back to the consumer's queue through the
 *   default exchange (so only that consumer sees the retry, not every subscriber);
 * - `<ns>.dead` (fanout) and its queue `<ns>.dead`, drained into MySQL by the dead-letter collector.
 * Only RabbitMQ 3.10 features: quorum queues, x-delivery-limit, message TTL, dead-letter exchanges.
 */
export interface Topology {
  /** Prefix of every name (`postroom`; tests use a random one). */
  namespace: string;
  /** Short names of the topic exchanges. */
  exchanges: readonly string[];
  /** Consumer queues. */
  queues: readonly QueueSpec[];
  /** Delay of each retry tier in milliseconds, growing. */
  retryDelaysMs: readonly number[];
  /** Deliveries of one message (crashes included) before RabbitMQ dead-letters it. */
  deliveryLimit: number;
}

/** Default retry tiers: 1 s, 5 s, 30 s, 2 min, 10 min. */
export const DEFAULT_RETRY_DELAYS_MS = [1_000, 5_000, 30_000, 120_000, 600_000] as const;

/** Full names derived from a topology. */
export const names = {
  exchange: (ns: string, short: string) => `${ns}.${short}`,
  queue: (ns: string, consumer: string) => `${ns}.${consumer}`,
  retryQueue: (ns: string, consumer: string, tier: number) => `${ns}.${consumer}.retry.${tier}`,
  deadExchange: (ns: string) => `${ns}.dead`,
  deadQueue: (ns: string) => `${ns}.dead`,
};

/** Declares every exchange, queue and binding (idempotent; run on each connect). */
export async function declareTopology(ch: Channel, t: Topology): Promise<void> {
  for (const ex of t.exchanges)
    await ch.assertExchange(names.exchange(t.namespace, ex), 'topic', { durable: true });
  await ch.assertExchange(names.deadExchange(t.namespace), 'fanout', { durable: true });
  await ch.assertQueue(names.deadQueue(t.namespace), { durable: true });
  await ch.bindQueue(names.deadQueue(t.namespace), names.deadExchange(t.namespace), '');
  for (const q of t.queues) {
    const queue = names.queue(t.namespace, q.name);
    await ch.assertQueue(queue, {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        'x-delivery-limit': t.deliveryLimit,
        'x-dead-letter-exchange': names.deadExchange(t.namespace),
        'x-dead-letter-strategy': 'at-least-once',
      },
    });
    for (const b of q.bindings)
      await ch.bindQueue(queue, names.exchange(t.namespace, b.exchange), b.routingKey);
    for (const [tier, delay] of t.retryDelaysMs.entries()) {
      await ch.assertQueue(names.retryQueue(t.namespace, q.name, tier), {
        durable: true,
        arguments: {
          'x-message-ttl': delay,
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': queue,
        },
      });
    }
  }
}

/** Deletes everything `declareTopology` made (tests clean up their namespace with it). */
export async function deleteTopology(ch: Channel, t: Topology): Promise<void> {
  for (const q of t.queues) {
    await ch.deleteQueue(names.queue(t.namespace, q.name));
    for (const tier of t.retryDelaysMs.keys())
      await ch.deleteQueue(names.retryQueue(t.namespace, q.name, tier));
  }
  await ch.deleteQueue(names.deadQueue(t.namespace));
  await ch.deleteExchange(names.deadExchange(t.namespace));
  for (const ex of t.exchanges) await ch.deleteExchange(names.exchange(t.namespace, ex));
}
