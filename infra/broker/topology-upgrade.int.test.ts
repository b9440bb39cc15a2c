import { connect, type Channel, type ChannelModel } from 'amqplib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { EmailReceivedV1 } from '../../contracts/index.js';
import {
  deleteTestTopology,
  emailReceivedEvent,
  startTestBroker,
  testLogger,
  testNamespace,
  testTopology,
  waitFor,
} from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { appendTimeline } from '../db/repositories/timeline.repository.js';
import type { Broker } from './connection.js';
import { ATTEMPT_HEADER, startConsumer, type RunningConsumer } from './consume.js';
import type { ConsumerDefinition } from './handler.js';
import { consumerQueueArguments, names, type Topology } from './topology.js';
import { upgradeLegacyQueues } from './topology-upgrade.js';

const log = testLogger();

const emailReceived = (): EmailReceivedV1 => emailReceivedEvent({ subject: 'upgrade' });

const effectConsumer: ConsumerDefinition<'email.received'> = {
  name: 'effect',
  events: ['email.received'],
  async handle(event, ctx) {
    await ctx.commit(async (trx) => {
      await appendTimeline(trx, [
        { emailId: event.data.emailId, stage: 'upgrade', event: 'applied', detail: event.id },
      ]);
    });
  },
};

/** Retry tiers of the legacy layout in these tests: long, so their messages are still there. */
const LEGACY_TIERS = [60_000, 120_000];

/** The layout of releases before `.v2`, exactly as they declared it. */
async function declareLegacy(ch: Channel, t: Topology): Promise<void> {
  const ns = t.namespace;
  for (const ex of t.exchanges) await ch.assertExchange(names.exchange(ns, ex), 'topic', { durable: true });
  await ch.assertExchange(names.deadExchange(ns), 'fanout', { durable: true });
  await ch.assertQueue(names.deadQueue(ns), { durable: true });
  await ch.bindQueue(names.deadQueue(ns), names.deadExchange(ns), '');
  for (const q of t.queues) {
    const queue = names.legacyQueue(ns, q.name);
    await ch.assertQueue(queue, {
      durable: true,
      arguments: {
        'x-queue-type': 'quorum',
        'x-delivery-limit': t.deliveryLimit,
        'x-dead-letter-exchange': names.deadExchange(ns),
        'x-dead-letter-strategy': 'at-least-once',
      },
    });
    for (const b of q.bindings) await ch.bindQueue(queue, names.exchange(ns, b.exchange), b.routingKey);
    for (const [tier, delay] of LEGACY_TIERS.entries())
      await ch.assertQueue(names.legacyRetryQueue(ns, q.name, tier), {
        durable: true,
        arguments: {
          'x-message-ttl': delay,
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': queue,
        },
      });
  }
}

async function exists(conn: ChannelModel, queue: string): Promise<boolean> {
  const ch = await conn.createChannel();
  ch.on('error', () => undefined);
  try {
    await ch.checkQueue(queue);
    return true;
  } catch {
    return false;
  } finally {
    await ch.close().catch(() => undefined);
  }
}

describe('upgrading the queues of an earlier release to .v2 on the real broker', () => {
  let t: TestDatabase;
  let topology: Topology;
  let conn: ChannelModel;
  let broker: Broker | null = null;
  let consumer: RunningConsumer | null = null;

  beforeAll(async () => {
    t = await createTestDatabase('upgrade');
    conn = await connect(TEST_AMQP_URL);
  });
  beforeEach(() => {
    topology = testTopology(testNamespace('upgrade'), { effect: ['email.received'] });
  });
  afterEach(async () => {
    await consumer?.stop();
    consumer = null;
    await broker?.close();
    broker = null;
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    for (const q of [
      names.legacyQueue(topology.namespace, 'effect'),
      ...LEGACY_TIERS.map((_, i) => names.legacyRetryQueue(topology.namespace, 'effect', i)),
    ])
      await ch.deleteQueue(q);
    await ch.close().catch(() => undefined);
    await deleteTestTopology(topology);
  });
  afterAll(async () => {
    await conn?.close();
    await t?.drop();
  });

  /** Puts events in the legacy layout: `main` routed to the legacy queue, the rest in its retry tiers. */
  async function queueLegacy(main: number, retry0: number, retry1: number): Promise<EmailReceivedV1[]> {
    const ch = await conn.createConfirmChannel();
    await declareLegacy(ch, topology);
    const ns = topology.namespace;
    const all: EmailReceivedV1[] = [];
    const put = (exchange: string, key: string, attempt: number) => {
      const e = emailReceived();
      all.push(e);
      ch.publish(exchange, key, Buffer.from(JSON.stringify(e)), {
        persistent: true,
        messageId: e.id,
        contentType: 'application/json',
        headers: { [ATTEMPT_HEADER]: attempt },
      });
    };
    for (let i = 0; i < main; i++) put(names.exchange(ns, 'mail'), 'email.received', 1);
    for (let i = 0; i < retry0; i++) put('', names.legacyRetryQueue(ns, 'effect', 0), 2);
    for (let i = 0; i < retry1; i++) put('', names.legacyRetryQueue(ns, 'effect', 1), 3);
    await ch.waitForConfirms();
    await ch.close();
    return all;
  }

  const applied = async (ids: string[]) =>
    (await t.db.selectFrom('timeline').select('detail').where('stage', '=', 'upgrade').execute())
      .map((r) => r.detail ?? '')
      .filter((d) => ids.includes(d));

  async function expectAppliedOnce(events: EmailReceivedV1[]) {
    const ids = events.map((e) => e.id);
    await waitFor(async () => (await applied(ids)).length >= ids.length, 20_000, 'every event applied');
    await new Promise((r) => setTimeout(r, 300));
    const got = await applied(ids);
    expect(got).toHaveLength(ids.length);
    expect(new Set(got).size).toBe(ids.length);
  }

  it('moves every queued message (main queue and retry tiers) to the .v2 queues and deletes the old ones', async () => {
    const legacy = await queueLegacy(40, 7, 3);
    broker = await startTestBroker(topology);
    consumer = await startConsumer(effectConsumer, { broker, db: t.db, log });
    const later = [emailReceived(), emailReceived()];
    for (const e of later)
      await broker.publish(
        names.exchange(topology.namespace, 'mail'),
        e.type,
        Buffer.from(JSON.stringify(e)),
        {
          messageId: e.id,
        },
      );
    await expectAppliedOnce([...legacy, ...later]);

    const ns = topology.namespace;
    expect(await exists(conn, names.legacyQueue(ns, 'effect'))).toBe(false);
    expect(await exists(conn, names.legacyRetryQueue(ns, 'effect', 0))).toBe(false);
    expect(await exists(conn, names.legacyRetryQueue(ns, 'effect', 1))).toBe(false);
    // The new queue has the arguments of at-least-once dead-lettering: a redeclare with them is
    // accepted, one without x-overflow is refused.
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    await ch.assertQueue(names.queue(ns, 'effect'), {
      durable: true,
      arguments: consumerQueueArguments(topology),
    });
    const { ['x-overflow']: _overflow, ...without } = consumerQueueArguments(topology);
    await expect(
      ch.assertQueue(names.queue(ns, 'effect'), { durable: true, arguments: without }),
    ).rejects.toThrow(/PRECONDITION_FAILED/);
  });

  it('keeps the legacy queues while an older process still consumes them, and finishes once it is gone', async () => {
    const legacy = await queueLegacy(20, 4, 0);
    const ns = topology.namespace;
    // An older process: holds one unacked message of the legacy queue.
    const old = await connect(TEST_AMQP_URL);
    const oldCh = await old.createChannel();
    await oldCh.prefetch(1);
    await oldCh.consume(names.legacyQueue(ns, 'effect'), () => undefined, { noAck: false });

    broker = await startTestBroker(topology);
    consumer = await startConsumer(effectConsumer, { broker, db: t.db, log });
    await waitFor(
      async () => (await applied(legacy.map((e) => e.id))).length >= legacy.length - 1,
      20_000,
      'all but the held one',
    );
    expect(await exists(conn, names.legacyQueue(ns, 'effect'))).toBe(true);
    expect(await exists(conn, names.legacyRetryQueue(ns, 'effect', 0))).toBe(true);

    await old.close(); // its unacked message goes back to the legacy queue
    const report = await upgradeLegacyQueues(conn, topology, log);
    expect(report.moved).toBe(1);
    expect(report.kept).toEqual([]);
    expect(report.deleted.sort()).toEqual(
      [
        names.legacyQueue(ns, 'effect'),
        ...LEGACY_TIERS.map((_, i) => names.legacyRetryQueue(ns, 'effect', i)),
      ].sort(),
    );
    await expectAppliedOnce(legacy);
  });
});
