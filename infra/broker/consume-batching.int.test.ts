import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EmailReceivedV1 } from '../../contracts/index.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import {
  deleteTestTopology,
  emailReceivedEvent,
  startTestBroker,
  testLogger,
  testNamespace,
  testTopology,
  waitFor,
} from '../../test/broker.js';
import { listDeadLetters } from '../db/repositories/dead-letters.repository.js';
import { appendTimeline } from '../db/repositories/timeline.repository.js';
import { PermanentError } from '../errors.js';
import type { Broker } from './connection.js';
import { startConsumer } from './consume.js';
import { enqueueEvents, signalOutbox } from './outbox.js';
import { startOutboxRelay, type OutboxRelay } from './outbox-relay.js';
import type { Topology } from './topology.js';

const log = testLogger();

const emailReceived = (subject: string): EmailReceivedV1 => emailReceivedEvent({ subject });

describe('consumer runner: batched commits and events that change nothing', () => {
  let t: TestDatabase;
  let topology: Topology;
  let broker: Broker;
  let relay: OutboxRelay;

  beforeAll(async () => {
    t = await createTestDatabase('runbatch');
    topology = testTopology(testNamespace('runbatch'), {
      batched: ['email.received'],
      idle: ['email.received'],
    });
    broker = await startTestBroker(topology);
    relay = startOutboxRelay({ broker, db: t.db, log, pollMs: 200 });
  });
  afterAll(async () => {
    await relay?.stop();
    await broker?.close();
    if (topology) await deleteTestTopology(topology);
    await t?.drop();
  });

  const publish = async (events: EmailReceivedV1[]) => {
    await t.db.transaction().execute((trx) => enqueueEvents(trx, events));
    signalOutbox();
  };
  const applied = async (stage: string) =>
    (await t.db.selectFrom('timeline').select('detail').where('stage', '=', stage).execute()).map(
      (r) => r.detail,
    );

  it('applies each of many events once, and parks a failing one alone', async () => {
    const consumer = await startConsumer(
      {
        name: 'batched',
        events: ['email.received'],
        prefetch: 20,
        batchCommits: true,
        async handle(event, ctx) {
          await ctx.commit(async (trx) => {
            await appendTimeline(trx, [
              { emailId: event.data.emailId, stage: 'batched', event: 'applied', detail: event.id },
            ]);
            if (event.data.subject === 'poison') throw new PermanentError('TEST.POISON', 'this one breaks');
          });
        },
      },
      { broker, db: t.db, log },
    );
    try {
      const events = Array.from({ length: 60 }, (_, i) => emailReceived(i === 17 ? 'poison' : `ok ${i}`));
      await publish(events);
      const good = events.filter((e) => e.data.subject !== 'poison').map((e) => e.id);
      await waitFor(
        async () => (await applied('batched')).length >= good.length,
        20_000,
        'good events applied',
      );
      await waitFor(async () => (await listDeadLetters(t.db, {})).length > 0, 10_000, 'poison parked');
      expect((await applied('batched')).sort()).toEqual([...good].sort());
      const parked = await listDeadLetters(t.db, {});
      expect(parked.map((p) => p.event_id)).toEqual([events[17]!.id]);
      const inbox = await t.db
        .selectFrom('inbox')
        .select('event_id')
        .where('consumer', '=', 'batched')
        .execute();
      expect(inbox.map((r) => r.event_id).sort()).toEqual([...good].sort());
    } finally {
      await consumer.stop();
    }
  });

  it('keeps no inbox row for an event the handler says changes nothing', async () => {
    const seen: string[] = [];
    const consumer = await startConsumer(
      {
        name: 'idle',
        events: ['email.received'],
        async handle(event, ctx) {
          seen.push(event.id);
          if (event.data.subject === 'nothing to do') return ctx.unchanged();
          await ctx.commit(async () => undefined);
        },
      },
      { broker, db: t.db, log },
    );
    try {
      const nothing = emailReceived('nothing to do');
      const work = emailReceived('work');
      await publish([nothing, work]);
      // The queue also gets the first test's events: only these two are looked at.
      const ours = t.db
        .selectFrom('inbox')
        .select('event_id')
        .where('consumer', '=', 'idle')
        .where('event_id', 'in', [nothing.id, work.id]);
      await waitFor(() => seen.includes(nothing.id) && seen.includes(work.id), 10_000, 'both handled');
      await waitFor(async () => (await ours.execute()).length > 0, 5_000, 'the inbox row of the work');
      expect((await ours.execute()).map((r) => r.event_id)).toEqual([work.id]);
    } finally {
      await consumer.stop();
    }
  });
});
