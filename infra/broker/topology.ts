import type { Channel } from 'amqplib';
import { backoffSteps, type Backoff } from '../backoff.js';

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
 * - per consumer a durable quorum queue `<ns>.<consumer>.v2` with a delivery limit (a message that
 *   kills its consumer again and again is dead-lettered instead of looping), dead-lettering to
 *   `<ns>.dead` at least once: RabbitMQ honours `x-dead-letter-strategy: at-least-once` only with
 *   `x-overflow: reject-publish` and otherwise silently falls back to at-most-once;
 * - per consumer one retry queue per delay tier, `<ns>.<consumer>.v2.retry.<i>`: each message waits
 *   there for its own `expiration` (set by the runner, at most the tier's delay), then RabbitMQ
 *   dead-letters it straight back to the consumer's queue through the default exchange (so only that
 *   consumer sees the retry, not every subscriber). The queues carry no TTL of their own, so the
 *   tiers can change without redeclaring them;
 * - `<ns>.dead` (fanout) and its queue `<ns>.dead`, drained into MySQL by the dead-letter collector.
 * Only RabbitMQ 3.10 features: quorum queues, x-delivery-limit, per-message TTL, dead-letter exchanges.
 *
 * `.v2` exists because RabbitMQ refuses to redeclare a queue with other arguments: the queues of
 * earlier releases (`<ns>.<consumer>`, without `x-overflow`, and their TTL retry queues) are emptied
 * into the new ones by `upgradeLegacyQueues` (topology-upgrade.ts) and then deleted.
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

/**
 * Growth of the default retry tiers: 1 s, 4 s, 16 s, 64 s, about 4 min, about 17 min, 1 h. With a time
 * budget (`retryForMs`, 24 h for outbound calls and Drive uploads) the hour repeats until it is spent.
 */
export const RETRY_BACKOFF: Backoff = { baseMs: 1_000, factor: 4, maxMs: 3_600_000 };

/** Default retry tiers, from `RETRY_BACKOFF`. */
export const DEFAULT_RETRY_DELAYS_MS: readonly number[] = backoffSteps(RETRY_BACKOFF);

/** Version of the consumer queues' arguments, in their names (see `Topology`). */
export const QUEUE_VERSION = 'v2';

/** Full names derived from a topology. */
export const names = {
  exchange: (ns: string, short: string) => `${ns}.${short}`,
  queue: (ns: string, consumer: string) => `${ns}.${consumer}.${QUEUE_VERSION}`,
  retryQueue: (ns: string, consumer: string, tier: number) =>
    `${ns}.${consumer}.${QUEUE_VERSION}.retry.${tier}`,
  /** The consumer a queue name belongs to (`<ns>.<consumer>.v2` or a legacy `<ns>.<consumer>`). */
  consumerOf: (ns: string, queue: string) => {
    const rest = queue.startsWith(`${ns}.`) ? queue.slice(ns.length + 1) : queue;
    return rest.endsWith(`.${QUEUE_VERSION}`) ? rest.slice(0, -QUEUE_VERSION.length - 1) : rest;
  },
  /** Names of releases before `.v2`, for the upgrade. */
  legacyQueue: (ns: string, consumer: string) => `${ns}.${consumer}`,
  legacyRetryQueue: (ns: string, consumer: string, tier: number) => `${ns}.${consumer}.retry.${tier}`,
  deadExchange: (ns: string) => `${ns}.dead`,
  deadQueue: (ns: string) => `${ns}.dead`,
};

/** Arguments of a consumer queue (`<ns>.<consumer>.v2`). */
export function consumerQueueArguments(t: Topology): Record<string, unknown> {
  return {
    'x-queue-type': 'quorum',
    'x-delivery-limit': t.deliveryLimit,
    'x-dead-letter-exchange': names.deadExchange(t.namespace),
    'x-dead-letter-strategy': 'at-least-once',
    'x-overflow': 'reject-publish',
  };
}

/** Declares every exchange, queue and binding (idempotent; run on each connect). */
export async function declareTopology(ch: Channel, t: Topology): Promise<void> {
  for (const ex of t.exchanges)
    await ch.assertExchange(names.exchange(t.namespace, ex), 'topic', { durable: true });
  await ch.assertExchange(names.deadExchange(t.namespace), 'fanout', { durable: true });
  await ch.assertQueue(names.deadQueue(t.namespace), { durable: true });
  await ch.bindQueue(names.deadQueue(t.namespace), names.deadExchange(t.namespace), '');
  for (const q of t.queues) {
    const queue = names.queue(t.namespace, q.name);
    await ch.assertQueue(queue, { durable: true, arguments: consumerQueueArguments(t) });
    for (const b of q.bindings)
      await ch.bindQueue(queue, names.exchange(t.namespace, b.exchange), b.routingKey);
    for (const tier of t.retryDelaysMs.keys()) {
      await ch.assertQueue(names.retryQueue(t.namespace, q.name, tier), {
        durable: true,
        arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': queue },
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
