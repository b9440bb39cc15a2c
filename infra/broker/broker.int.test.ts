import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
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
import { startTcpProxy, type TcpProxy } from '../../test/tcp-proxy.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { listDeadLetters } from '../db/repositories/dead-letters.repository.js';
import { appendTimeline } from '../db/repositories/timeline.repository.js';
import { PermanentError, RetryableError } from '../errors.js';
import { consumedTotal } from '../metrics.js';
import type { Broker } from './connection.js';
import { startConsumer, type RunningConsumer } from './consume.js';
import { replayDeadLetter, startDeadLetterCollector } from './dead-letters.js';
import { createEvent } from './events.js';
import type { ConsumerDefinition } from './handler.js';
import { enqueueEvents, signalOutbox } from './outbox.js';
import { startOutboxRelay, type OutboxRelay } from './outbox-relay.js';
import { names, type Topology } from './topology.js';

const log = testLogger();

const emailReceived = (subject = 'hello'): EmailReceivedV1 => emailReceivedEvent({ subject });

/** The effect a test consumer has: one timeline row per applied event, in the inbox transaction. */
async function effects(t: TestDatabase, consumer: string): Promise<Map<string, number>> {
  const rows = await t.db.selectFrom('timeline').select(['detail']).where('stage', '=', consumer).execute();
  const m = new Map<string, number>();
  for (const r of rows) m.set(r.detail ?? '', (m.get(r.detail ?? '') ?? 0) + 1);
  return m;
}

/** How many messages a consumer handled with an outcome (`ok`, `duplicate`, ...), from its metrics. */
async function consumed(queue: string, outcome: string): Promise<number> {
  const m = await consumedTotal.get();
  return m.values
    .filter((v) => v.labels['queue'] === queue && v.labels['outcome'] === outcome)
    .reduce((a, v) => a + v.value, 0);
}

function recordingConsumer(
  name: string,
  behaviour?: (e: EmailReceivedV1, attempt: number) => void,
): ConsumerDefinition<'email.received'> {
  return {
    name,
    events: ['email.received'],
    prefetch: 20,
    async handle(event, ctx) {
      behaviour?.(event, ctx.attempt);
      await ctx.commit(async (trx) => {
        await appendTimeline(trx, [
          { emailId: event.data.emailId, stage: name, event: 'applied', detail: event.id },
        ]);
      });
    },
  };
}

describe('broker, outbox and consumer runner on real RabbitMQ and MariaDB', () => {
  let t: TestDatabase;
  let topology: Topology;
  let broker: Broker;
  let relay: OutboxRelay;
  const running: RunningConsumer[] = [];

  beforeAll(async () => {
    t = await createTestDatabase('broker');
  });
  // Each test gets its own namespace (exchanges and queues), so no message leaks between tests.
  beforeEach(async () => {
    topology = testTopology(testNamespace('broker'), {
      effect: ['email.received'],
      flaky: ['email.received'],
      doomed: ['email.received'],
      strict: ['email.received'],
      burst: ['email.received'],
      crashy: ['email.received'],
    });
    broker = await startTestBroker(topology);
    relay = startOutboxRelay({ broker, db: t.db, log, pollMs: 200 });
  });
  afterEach(async () => {
    while (running.length) await running.pop()?.stop();
    await relay?.stop();
    await broker?.close();
    await deleteTestTopology(topology);
    await t.db.deleteFrom('outbox').execute();
  });
  afterAll(async () => {
    await t?.drop();
  });

  async function start(def: ConsumerDefinition<'email.received'>, b: Broker = broker) {
    const c = await startConsumer(def, { broker: b, db: t.db, log });
    running.push(c);
    return c;
  }

  it('publishes an event whose transaction commits, and never one whose transaction rolls back', async () => {
    await start(recordingConsumer('effect'));
    const kept = emailReceived('kept');
    const dropped = emailReceived('dropped');
    await t.db
      .transaction()
      .execute(async (trx) => {
        await enqueueEvents(trx, [dropped]);
        throw new Error('business rule failed');
      })
      .catch(() => undefined);
    await t.db.transaction().execute((trx) => enqueueEvents(trx, [kept]));
    signalOutbox();
    await waitFor(async () => (await effects(t, 'effect')).get(kept.id) === 1, 10_000, 'kept event applied');
    await relay.flush();
    const out = await t.db.selectFrom('outbox').select(['event_id', 'sent_at']).execute();
    expect(out.map((r) => r.event_id)).toEqual([kept.id]);
    expect(out[0]?.sent_at).toBeInstanceOf(Date);
    expect((await effects(t, 'effect')).has(dropped.id)).toBe(false);
  });

  it('absorbs the duplicate when the relay dies after publishing and before marking sent', async () => {
    await start(recordingConsumer('effect'));
    await relay.stop(); // only the dying relay runs in this test
    const duplicatesBefore = await consumed('effect', 'duplicate');
    const e = emailReceived('twice');
    let died = 0;
    const dying = startOutboxRelay({
      broker,
      db: t.db,
      log,
      pollMs: 60_000,
      afterPublish: (ids) => {
        if (died === 0 && ids.includes(e.id)) {
          died += 1;
          throw new Error('relay killed after publish');
        }
      },
    });
    try {
      await t.db.transaction().execute((trx) => enqueueEvents(trx, [e]));
      // The failed pass rolls back (the row stays unsent) and the next pass publishes it again.
      await dying.flush();
      expect(died).toBe(1);
      const row = await t.db
        .selectFrom('outbox')
        .select('sent_at')
        .where('event_id', '=', e.id)
        .executeTakeFirstOrThrow();
      expect(row.sent_at).toBeInstanceOf(Date);
      await waitFor(
        async () => (await consumed('effect', 'duplicate')) > duplicatesBefore,
        10_000,
        'duplicate delivery seen',
      );
      expect((await effects(t, 'effect')).get(e.id)).toBe(1);
    } finally {
      await dying.stop();
    }
  });

  it('applies an event delivered twice only once', async () => {
    await start(recordingConsumer('effect'));
    const e = emailReceived('dup');
    const body = Buffer.from(JSON.stringify(e));
    const ex = names.exchange(topology.namespace, 'mail');
    await Promise.all([
      broker.publish(ex, e.type, body, { messageId: e.id }),
      broker.publish(ex, e.type, body, { messageId: e.id }),
    ]);
    await waitFor(async () => (await effects(t, 'effect')).get(e.id) === 1, 10_000, 'effect');
    await new Promise((r) => setTimeout(r, 500));
    expect((await effects(t, 'effect')).get(e.id)).toBe(1);
  });

  it('retries a retryable failure after a delay, then succeeds', async () => {
    const attempts: { attempt: number; at: number }[] = [];
    await start(
      recordingConsumer('flaky', (_e, attempt) => {
        attempts.push({ attempt, at: Date.now() });
        if (attempt < 3) throw new RetryableError('TEST.FLAKY', `attempt ${attempt} fails`);
      }),
    );
    const e = emailReceived('flaky');
    await t.db.transaction().execute((trx) => enqueueEvents(trx, [e]));
    signalOutbox();
    await waitFor(async () => (await effects(t, 'flaky')).get(e.id) === 1, 15_000, 'flaky applied');
    expect(attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    // Tier delays are 100 ms then 200 ms, each shortened by up to a quarter of jitter.
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(70);
    expect(attempts[2]!.at - attempts[1]!.at).toBeGreaterThanOrEqual(145);
    expect(await listDeadLetters(t.db, { consumer: 'flaky' })).toEqual([]);
  });

  it('parks a message that always fails after its attempts, with the reason, and replays it', async () => {
    let failing = true;
    let calls = 0;
    await start(
      recordingConsumer('doomed', () => {
        calls += 1;
        if (failing) throw new Error('target is down');
      }),
    );
    const e = emailReceived('doomed');
    await t.db.transaction().execute((trx) => enqueueEvents(trx, [e]));
    signalOutbox();
    const [dl] = await waitFor(
      async () => {
        const l = await listDeadLetters(t.db, { consumer: 'doomed' });
        return l.length ? l : null;
      },
      15_000,
      'parked',
    );
    expect(calls).toBe(3); // first delivery + one per retry tier
    expect(dl!.event_id).toBe(e.id);
    expect(dl!.attempts).toBe(3);
    expect(dl!.reason).toContain('gave up after 3 attempts');
    expect(dl!.reason).toContain('target is down');
    expect((await effects(t, 'doomed')).has(e.id)).toBe(false);

    failing = false;
    await replayDeadLetter({ broker, db: t.db }, dl!.id);
    await waitFor(async () => (await effects(t, 'doomed')).get(e.id) === 1, 10_000, 'replayed and applied');
    expect(await listDeadLetters(t.db, { consumer: 'doomed' })).toEqual([]);
  });

  it('parks an invalid message at once, and a permanent error at once, without crashing the consumer', async () => {
    let calls = 0;
    await start(
      recordingConsumer('strict', (e) => {
        calls += 1;
        if (e.data.subject === 'permanent') throw new PermanentError('TEST.NOPE', 'this can never work');
      }),
    );
    const ex = names.exchange(topology.namespace, 'mail');
    await broker.publish(ex, 'email.received', Buffer.from('{not json'));
    const bad = { ...emailReceived('bad'), data: { subject: 42 } };
    await broker.publish(ex, 'email.received', Buffer.from(JSON.stringify(bad)));
    const perm = emailReceived('permanent');
    await broker.publish(ex, 'email.received', Buffer.from(JSON.stringify(perm)));
    await broker.publish(ex, 'email.received', Buffer.from(JSON.stringify({ hello: 'world' })));
    // A valid event of a type this consumer does not take, put straight into its queue.
    const foreign = createEvent(
      'email.processed',
      {
        emailId: randomUUID(),
        messageId: 'x@test',
        source: 'imap',
        subject: 's',
        from: 'ana@example.com',
        chatId: null,
        attachments: [],
      },
      { correlationId: randomUUID() },
    );
    await broker.publish('', names.queue(topology.namespace, 'strict'), Buffer.from(JSON.stringify(foreign)));
    const good = emailReceived('good');
    await broker.publish(ex, 'email.received', Buffer.from(JSON.stringify(good)));
    await waitFor(
      async () => (await listDeadLetters(t.db, { consumer: 'strict' })).length === 5,
      10_000,
      '5 parked',
    );
    await waitFor(async () => (await effects(t, 'strict')).get(good.id) === 1, 10_000, 'good applied');
    const reasons = (await listDeadLetters(t.db, { consumer: 'strict' })).map((d) => [d.attempts, d.reason]);
    expect(reasons).toEqual(
      expect.arrayContaining([
        [1, expect.stringContaining('not JSON')],
        [1, expect.stringMatching(/Invalid email.received event.*\/data/)],
        [1, expect.stringContaining('not a Postroom event envelope')],
        [1, expect.stringMatching(/Unexpected event type.*email\.processed is not one of email\.received/)],
        [1, 'TEST.NOPE: this can never work'],
      ]),
    );
    expect(calls).toBe(2); // the permanent one and the good one; invalid ones never reach the handler
  });

  it('loses no confirmed message when connections drop mid-burst, and carries on after reconnecting', async () => {
    const [host, port] = new URL(TEST_AMQP_URL).host.split(':');
    const proxy: TcpProxy = await startTcpProxy(host ?? '127.0.0.1', Number(port ?? 5672));
    const u = new URL(TEST_AMQP_URL);
    u.host = `127.0.0.1:${proxy.port}`;
    const flaky = await startTestBroker(topology, u.toString());
    try {
      await start(recordingConsumer('burst'), flaky);
      const confirmed: string[] = [];
      const ex = names.exchange(topology.namespace, 'mail');
      const publishing = (async () => {
        for (let i = 0; i < 600; i++) {
          const e = emailReceived(`burst ${i}`);
          for (;;) {
            try {
              await flaky.waitConnected(10_000);
              await flaky.publish(ex, e.type, Buffer.from(JSON.stringify(e)), { messageId: e.id });
              confirmed.push(e.id);
              break;
            } catch {
              // not confirmed: the publisher tries again, as the outbox relay would
            }
          }
        }
      })();
      for (let k = 0; k < 3; k++) {
        await waitFor(() => confirmed.length > 100 * (k + 1), 20_000, 'progress');
        proxy.dropConnections();
      }
      await publishing;
      expect(proxy.accepted()).toBeGreaterThanOrEqual(4);
      await waitFor(
        async () => {
          const m = await effects(t, 'burst');
          return confirmed.every((id) => m.get(id) === 1);
        },
        30_000,
        'every confirmed message applied',
      );
      const m = await effects(t, 'burst');
      expect([...m.values()].every((n) => n === 1)).toBe(true);
    } finally {
      await flaky.close();
      await proxy.close();
    }
  });

  it('dead-letters a message that kills its consumer again and again, and records it in MySQL', async () => {
    const collector = await startDeadLetterCollector({ broker, db: t.db, log });
    try {
      const [host, port] = new URL(TEST_AMQP_URL).host.split(':');
      const proxy = await startTcpProxy(host ?? '127.0.0.1', Number(port ?? 5672));
      const u = new URL(TEST_AMQP_URL);
      u.host = `127.0.0.1:${proxy.port}`;
      const dying = await startTestBroker(topology, u.toString());
      const e = emailReceived('poison');
      // Each delivery "crashes" the process: the connection dies before the ack.
      await start(
        recordingConsumer('crashy', () => {
          proxy.dropConnections();
          throw new Error('crash');
        }),
        dying,
      );
      await broker.publish(
        names.exchange(topology.namespace, 'mail'),
        e.type,
        Buffer.from(JSON.stringify(e)),
        { messageId: e.id },
      );
      const [dl] = await waitFor(
        async () => {
          const l = await listDeadLetters(t.db, { consumer: 'crashy' });
          return l.length ? l : null;
        },
        30_000,
        'delivery-limit dead letter',
      );
      expect(dl!.event_id).toBe(e.id);
      expect(dl!.reason).toContain('DELIVERY_LIMIT');
      await running.pop()?.stop();
      await dying.close();
      await proxy.close();
    } finally {
      await collector.stop();
    }
  });
});
