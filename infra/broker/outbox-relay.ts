import { sql } from 'kysely';
import type { Db } from '../db/database.js';
import type { Logger } from '../logger.js';
import { outboxBatchSeconds, outboxPending, publishedTotal } from '../metrics.js';
import type { Broker } from './connection.js';
import { outboxSignal } from './outbox.js';
import { names } from './topology.js';

/** Options of the relay. */
export interface OutboxRelayOptions {
  broker: Broker;
  db: Db;
  log: Logger;
  /** Rows per batch (default 500). */
  batchSize?: number;
  /** Poll period in ms when nothing signals (default 1000). */
  pollMs?: number;
  /** How long the relay waits after a commit's signal for more commits to join its batch (ms, default 5). */
  gatherMs?: number;
  /** Sent rows older than this are deleted (default 24 h). */
  retainSentMs?: number;
  /** Inbox rows older than this are deleted (default 30 days; longer than any redelivery can come). */
  retainInboxMs?: number;
  /** Test hook: called after a batch is confirmed and before it is marked sent. */
  afterPublish?: (eventIds: string[]) => Promise<void> | void;
}

/** A running relay. */
export interface OutboxRelay {
  /** Publishes everything pending now (resolves when the outbox is empty or the broker is down). */
  flush(): Promise<void>;
  /** Stops after the batch in flight, flushing what it can first. */
  stop(): Promise<void>;
}

/**
 * Moves committed outbox rows to RabbitMQ. Each pass locks a batch with `FOR UPDATE SKIP LOCKED` (so
 * several processes can relay at once without publishing the same row together), publishes every row
 * with publisher confirms, waits for all confirms, then marks the batch sent in the same transaction.
 * A crash after publishing and before the commit publishes the batch again later: consumers' inboxes
 * absorb the duplicates. It runs on a signal from committing code, on a timer, after a reconnect and
 * after the broker reopened a publishing channel RabbitMQ had closed.
 */
export function startOutboxRelay(opts: OutboxRelayOptions): OutboxRelay {
  const { broker, db } = opts;
  const log = opts.log.child({ module: 'outbox-relay' });
  const batchSize = opts.batchSize ?? 500;
  let running: Promise<void> | null = null;
  let again = false;
  let stopped = false;
  let lastHousekeeping = 0;
  const gatherMs = opts.gatherMs ?? 5;

  const publishBatch = async (): Promise<number> => {
    const started = process.hrtime.bigint();
    // READ COMMITTED, as every connection of `openDatabase` runs (set once per connection, not a
    // statement per batch): under REPEATABLE READ the locking read would also lock the gap after the
    // last row, and every insert into the outbox (every commit of every producer and consumer) would
    // wait behind the batch's publisher confirms. Rows still being committed are simply not seen yet.
    const count = await db.transaction().execute(async (trx) => {
      const rows = await trx
        .selectFrom('outbox')
        .select(['id', 'event_id', 'exchange', 'routing_key', 'body', 'correlation_id', 'created_at'])
        .where('sent_at', 'is', null)
        .orderBy('id')
        .limit(batchSize)
        .forUpdate()
        .skipLocked()
        .execute();
      if (rows.length === 0) return 0;
      await Promise.all(
        rows.map((r) =>
          broker
            .publish(
              names.exchange(broker.namespace, r.exchange),
              r.routing_key,
              Buffer.from(r.body, 'utf8'),
              {
                messageId: r.event_id,
                type: r.routing_key,
                correlationId: r.correlation_id,
                contentType: 'application/json',
                timestamp: Math.floor(r.created_at.getTime() / 1000),
                persistent: true,
              },
            )
            .then(() => publishedTotal.inc({ exchange: r.exchange, routing_key: r.routing_key })),
        ),
      );
      await opts.afterPublish?.(rows.map((r) => r.event_id));
      await trx
        .updateTable('outbox')
        .set({ sent_at: new Date() })
        .where(
          'id',
          'in',
          rows.map((r) => r.id),
        )
        .execute();
      return rows.length;
    });
    if (count > 0) outboxBatchSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    return count;
  };

  const housekeeping = async () => {
    const now = Date.now();
    if (now - lastHousekeeping < 60_000) return;
    lastHousekeeping = now;
    const sentBefore = new Date(now - (opts.retainSentMs ?? 86_400_000));
    await db.deleteFrom('outbox').where('sent_at', '<', sentBefore).limit(5_000).execute();
    const inboxBefore = new Date(now - (opts.retainInboxMs ?? 30 * 86_400_000));
    await db.deleteFrom('inbox').where('processed_at', '<', inboxBefore).limit(5_000).execute();
    const pending = await db
      .selectFrom('outbox')
      .select(sql<number>`count(*)`.as('n'))
      .where('sent_at', 'is', null)
      .executeTakeFirst();
    outboxPending.set(Number(pending?.n ?? 0));
  };

  const pass = async () => {
    do {
      again = false;
      if (!broker.isConnected()) return;
      try {
        let n: number;
        do n = await publishBatch();
        while (n === batchSize && !stopped);
        await housekeeping();
      } catch (err) {
        log.warn({ err }, 'outbox relay pass failed; will try again');
        await new Promise((r) => setTimeout(r, 500));
        if (!stopped) again = true;
      }
      // Commits that signalled while the batch waited for its confirms are followed by more in a busy
      // pipeline: gathering them a moment longer makes the next batch several times larger, and a
      // batch costs four statements whatever its size.
      if (again && !stopped) await new Promise((r) => setTimeout(r, gatherMs));
    } while (again && !stopped);
  };

  const kick = () => {
    if (running) {
      again = true;
      return running;
    }
    running = pass().finally(() => {
      running = null;
    });
    return running;
  };

  const onSignal = () => void kick();
  // Commits signal one by one; those of the next few milliseconds join one batch (one SELECT and one
  // UPDATE for them all) instead of a pass each. A pass already running picks them up when it ends.
  let gathering: NodeJS.Timeout | null = null;
  const onCommit = () => {
    if (running) {
      again = true;
      return;
    }
    gathering ??= setTimeout(() => {
      gathering = null;
      void kick();
    }, gatherMs);
  };
  outboxSignal.on('pending', onCommit);
  broker.on('connected', onSignal);
  // A publishing channel RabbitMQ closed under a live connection is reopened by the broker: resume
  // at once rather than at the next poll.
  broker.on('channel-reopened', onSignal);
  const timer = setInterval(onSignal, opts.pollMs ?? 1_000);
  timer.unref();
  void kick();

  return {
    async flush() {
      await kick();
      if (running) await running;
    },
    async stop() {
      clearInterval(timer);
      if (gathering) clearTimeout(gathering);
      outboxSignal.off('pending', onCommit);
      broker.off('connected', onSignal);
      broker.off('channel-reopened', onSignal);
      await kick();
      stopped = true;
      if (running) await running;
    },
  };
}
