import { connect, type Channel, type Message } from 'amqplib';
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
import { channelRecoveriesTotal } from '../metrics.js';
import type { Broker } from './connection.js';
import { startConsumer, type RunningConsumer } from './consume.js';
import type { ConsumerDefinition } from './handler.js';
import { enqueueEvents, signalOutbox } from './outbox.js';
import { startOutboxRelay, type OutboxRelay } from './outbox-relay.js';
import { names, type Topology } from './topology.js';

const log = testLogger();

const emailReceived = (): EmailReceivedV1 => emailReceivedEvent({ subject: 'channel' });

const effectConsumer: ConsumerDefinition<'email.received'> = {
  name: 'effect',
  events: ['email.received'],
  prefetch: 8,
  async handle(event, ctx) {
    await ctx.commit(async (trx) => {
      await appendTimeline(trx, [
        { emailId: event.data.emailId, stage: 'effect', event: 'applied', detail: event.id },
      ]);
    });
  },
};

async function recoveries(channel: string): Promise<number> {
  const m = await channelRecoveriesTotal.get();
  return m.values.filter((v) => v.labels['channel'] === channel).reduce((a, v) => a + v.value, 0);
}

/**
 * RabbitMQ closes one channel and keeps the connection: each test provokes a real channel error on
 * the real broker and checks that the relay and the consumer carry on, every event applied once.
 */
describe('channels RabbitMQ closes under a live connection are healed', () => {
  let t: TestDatabase;
  let topology: Topology;
  let broker: Broker;
  let relay: OutboxRelay;
  let consumer: RunningConsumer | null = null;
  let consumerChannel: Channel | null = null;

  beforeAll(async () => {
    t = await createTestDatabase('channels');
  });
  beforeEach(async () => {
    topology = testTopology(testNamespace('channels'), { effect: ['email.received'] });
    broker = await startTestBroker(topology);
    broker.on('channel-opened', (o: { purpose: string; channel: Channel }) => {
      if (o.purpose === 'effect') consumerChannel = o.channel;
    });
    relay = startOutboxRelay({ broker, db: t.db, log, pollMs: 60_000 });
    consumer = await startConsumer(effectConsumer, { broker, db: t.db, log });
  });
  afterEach(async () => {
    await consumer?.stop();
    await relay?.stop();
    await broker?.close();
    await deleteTestTopology(topology);
    await t.db.deleteFrom('outbox').execute();
  });
  afterAll(async () => {
    await t?.drop();
  });

  async function send(n: number): Promise<EmailReceivedV1[]> {
    const events = Array.from({ length: n }, emailReceived);
    await t.db.transaction().execute((trx) => enqueueEvents(trx, events));
    signalOutbox();
    return events;
  }

  /** Waits until every event is applied, then checks each was applied exactly once. */
  async function appliedOnce(events: EmailReceivedV1[]): Promise<void> {
    const ids = events.map((e) => e.id);
    const count = async () =>
      (await t.db.selectFrom('timeline').select('detail').where('stage', '=', 'effect').execute()).filter(
        (r) => ids.includes(r.detail ?? ''),
      );
    await waitFor(async () => (await count()).length >= ids.length, 15_000, 'every event applied');
    await new Promise((r) => setTimeout(r, 300));
    const rows = await count();
    expect(rows).toHaveLength(ids.length);
    expect(new Set(rows.map((r) => r.detail)).size).toBe(ids.length);
  }

  it('reopens the publishing channel after a 404 on it, and the relay resumes without a reconnect', async () => {
    const before = await recoveries('publish');
    let reconnects = 0;
    broker.on('connected', () => (reconnects += 1));
    // Publishing to an exchange that does not exist: RabbitMQ closes the channel (404 NOT_FOUND).
    await expect(
      broker.publish(`${topology.namespace}.no-such-exchange`, 'x', Buffer.from('{}')),
    ).rejects.toMatchObject({ retryable: true });
    expect(broker.isConnected()).toBe(false);
    const events = await send(10);
    await waitFor(async () => (await recoveries('publish')) > before, 10_000, 'publish channel reopened');
    await appliedOnce(events);
    expect(reconnects).toBe(0);
    const unsent = await t.db.selectFrom('outbox').select('id').where('sent_at', 'is', null).execute();
    expect(unsent).toEqual([]);
  });

  it('re-subscribes after an ack of an unknown delivery tag closed the consumer channel', async () => {
    const first = await send(10);
    await appliedOnce(first);
    const before = await recoveries('consumer');
    const ch = consumerChannel!;
    // 406 PRECONDITION_FAILED "unknown delivery tag": the channel closes, the connection stays.
    ch.ack({ fields: { deliveryTag: 999_999 } } as unknown as Message);
    await waitFor(async () => (await recoveries('consumer')) > before, 10_000, 'consumer channel reopened');
    expect(consumerChannel).not.toBe(ch);
    await appliedOnce([...first, ...(await send(10))]);
  });

  it('re-subscribes after a precondition failure (the queue redeclared with other arguments) on its channel', async () => {
    const before = await recoveries('consumer');
    const ch = consumerChannel!;
    await expect(
      ch.assertQueue(names.queue(topology.namespace, 'effect'), { durable: false }),
    ).rejects.toThrow(/PRECONDITION_FAILED/);
    const events = await send(10);
    await waitFor(async () => (await recoveries('consumer')) > before, 10_000, 'consumer channel reopened');
    await appliedOnce(events);
  });

  it('redeclares a deleted queue and re-subscribes after RabbitMQ cancelled the consumer', async () => {
    await appliedOnce(await send(5));
    const before = await recoveries('consumer');
    const conn = await connect(TEST_AMQP_URL);
    try {
      const admin = await conn.createChannel();
      await admin.deleteQueue(names.queue(topology.namespace, 'effect'));
    } finally {
      await conn.close();
    }
    await waitFor(async () => (await recoveries('consumer')) > before, 10_000, 'consumer re-subscribed');
    await appliedOnce(await send(10));
  });
});
