import type { Channel, ChannelModel } from 'amqplib';
import type { Broker } from '../../broker/connection.js';
import { SUBSCRIPTIONS } from '../../broker/subscriptions.js';
import { names } from '../../broker/topology.js';
import type { Logger } from '../../logger.js';
import type { Stats } from './schemas.js';

/** The queue part of `/stats`. */
export type QueueDepths = Pick<Stats, 'queues' | 'deadQueue'>;

/** Reads queue depths; `stop` forgets the connection. */
export interface QueueDepthReader {
  read(): Promise<QueueDepths>;
  stop(): void;
}

const TIMEOUT_MS = 5_000;

/**
 * Depth of every consumer queue of SUBSCRIPTIONS (this process may not declare them all: the
 * outbound and Telegram queues exist once a process running those roles has started), of each of
 * their retry tiers and of the dead queue, read with passive `checkQueue`. A missing queue makes
 * RabbitMQ close the channel (404), so the reader uses channels of its own, on the broker's current
 * connection, with a quiet error listener, and opens a new one after each miss. Null parts when
 * RabbitMQ does not answer in time: the database half of the stats is still worth having.
 */
export async function createQueueDepthReader(broker: Broker, log: Logger): Promise<QueueDepthReader> {
  let model: ChannelModel | null = null;
  const setup = async (m: ChannelModel) => {
    model = m;
  };
  await broker.addSetup(setup);

  const readAll = async (m: ChannelModel): Promise<QueueDepths> => {
    const { namespace: ns, retryDelaysMs } = broker.topology;
    let ch: Channel | null = null;
    const check = async (queue: string) => {
      if (!ch) {
        ch = await m.createChannel();
        ch.on('error', () => undefined); // a 404 for a queue not declared yet: expected
      }
      try {
        return await ch.checkQueue(queue);
      } catch (err) {
        if ((err as { code?: unknown }).code !== 404) throw err;
        ch = null;
        return null;
      }
    };
    try {
      const queues: NonNullable<Stats['queues']> = [];
      for (const consumer of Object.keys(SUBSCRIPTIONS)) {
        const queue = names.queue(ns, consumer);
        const main = await check(queue);
        const retry = [];
        if (main)
          for (const [tier, delayMs] of retryDelaysMs.entries()) {
            const r = await check(names.retryQueue(ns, consumer, tier));
            if (r) retry.push({ tier, delayMs, queue: r.queue, messages: r.messageCount });
          }
        queues.push({
          consumer,
          queue,
          declared: Boolean(main),
          messages: main?.messageCount ?? 0,
          consumers: main?.consumerCount ?? 0,
          retry,
        });
      }
      const dead = await check(names.deadQueue(ns));
      return { queues, deadQueue: dead ? { queue: dead.queue, messages: dead.messageCount } : null };
    } finally {
      const open = ch as Channel | null;
      if (open) await open.close().catch(() => undefined);
    }
  };

  return {
    async read() {
      const m = model;
      if (!m || !broker.isConnected()) return { queues: null, deadQueue: null };
      let timer: NodeJS.Timeout | undefined;
      const work = readAll(m);
      try {
        return await Promise.race([
          work,
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`RabbitMQ did not answer within ${TIMEOUT_MS} ms`)),
              TIMEOUT_MS,
            );
          }),
        ]);
      } catch (err) {
        log.warn({ err }, 'could not read queue depths');
        work.catch(() => undefined);
        return { queues: null, deadQueue: null };
      } finally {
        clearTimeout(timer);
      }
    },
    stop() {
      broker.removeSetup(setup);
      model = null;
    },
  };
}
