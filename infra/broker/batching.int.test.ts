import { randomUUID } from 'node:crypto';
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { testNamespace, waitFor } from '../../test/broker.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { AckBatcher } from './acks.js';
import { InboxWriter } from './inbox-writer.js';

describe('InboxWriter (group commit of inbox rows)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('inboxw');
  });
  afterAll(async () => {
    await t?.drop();
  });

  const rows = (consumer: string) =>
    t.db.selectFrom('inbox').select('event_id').where('consumer', '=', consumer).execute();

  it('records many events at once, one row each, and says none was a repeat', async () => {
    const writer = new InboxWriter(t.db, 'many');
    const ids = Array.from({ length: 300 }, () => randomUUID());
    const repeats = await Promise.all(ids.map((id) => writer.record(id)));
    expect(repeats.every((r) => r === false)).toBe(true);
    expect((await rows('many')).map((r) => r.event_id).sort()).toEqual([...ids].sort());
  });

  it('tells which events were already in the inbox, also within one batch', async () => {
    const writer = new InboxWriter(t.db, 'repeats');
    const old = randomUUID();
    await writer.record(old);
    const fresh = randomUUID();
    const twice = randomUUID();
    const repeats = await Promise.all([
      writer.record(fresh),
      writer.record(old),
      writer.record(twice),
      writer.record(twice),
    ]);
    expect(repeats).toEqual([false, true, false, true]);
    expect(await rows('repeats')).toHaveLength(3);
  });

  it('keeps consumers apart: the same event id is new to another consumer', async () => {
    const id = randomUUID();
    expect(await new InboxWriter(t.db, 'first').record(id)).toBe(false);
    expect(await new InboxWriter(t.db, 'second').record(id)).toBe(false);
  });

  it('rejects every caller of a batch the database refused, so their messages are retried', async () => {
    const writer = new InboxWriter(t.db, 'x'.repeat(300)); // longer than the column
    const results = await Promise.allSettled([writer.record(randomUUID()), writer.record(randomUUID())]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});

describe('AckBatcher (acks in few frames, each tag once)', () => {
  let conn: ChannelModel;
  const ns = testNamespace('acks');
  beforeAll(async () => {
    conn = await connect(TEST_AMQP_URL);
  });
  afterAll(async () => {
    await conn?.close().catch(() => undefined);
  });

  /** A fresh queue holding `n` messages whose bodies are their numbers. */
  async function queueWith(n: number): Promise<string> {
    const queue = `${ns}.${randomUUID()}`;
    const ch = await conn.createConfirmChannel();
    await ch.assertQueue(queue, { durable: false, exclusive: true }); // gone with the connection
    for (let i = 0; i < n; i++) ch.sendToQueue(queue, Buffer.from(String(i)));
    await ch.waitForConfirms();
    await ch.close();
    return queue;
  }

  /** Consumes `queue` on a new channel with `prefetch`; returns the channel and what arrived. */
  async function consumeAll(queue: string, prefetch: number) {
    const ch: Channel = await conn.createChannel();
    const errors: unknown[] = [];
    ch.on('error', (err) => errors.push(err));
    await ch.prefetch(prefetch);
    const acks = new AckBatcher(ch, (err) => errors.push(err));
    const got: ConsumeMessage[] = [];
    await ch.consume(queue, (msg) => {
      if (!msg) return;
      acks.delivered(msg);
      got.push(msg);
    });
    return { ch, acks, got, errors };
  }

  async function remaining(queue: string): Promise<number> {
    const ch = await conn.createChannel();
    try {
      return (await ch.checkQueue(queue)).messageCount;
    } finally {
      await ch.close();
    }
  }

  it('acks messages finished out of order without acking any twice, and none is redelivered', async () => {
    const queue = await queueWith(200);
    const { ch, acks, got, errors } = await consumeAll(queue, 50);
    let acked = 0;
    while (acked < 200) {
      await waitFor(() => got.length > acked);
      // Finish what has arrived in a scrambled order, some in this turn and some in the next.
      const batch = got.slice(acked);
      acked = got.length;
      batch.reverse().forEach((m, i) => (i % 3 === 0 ? setImmediate(() => acks.ack(m)) : acks.ack(m)));
    }
    await new Promise((r) => setTimeout(r, 200));
    await ch.close(); // anything not acked would go back to the queue now
    expect(errors).toEqual([]);
    expect(new Set(got.map((m) => m.content.toString())).size).toBe(200);
    expect(await remaining(queue)).toBe(0);
  });

  it('does not let one slow message hold back the acks of those behind it', async () => {
    const queue = await queueWith(10);
    const { ch, acks, got, errors } = await consumeAll(queue, 10);
    await waitFor(() => got.length === 10);
    for (const m of got.slice(1)) acks.ack(m); // the first one is still "in work"
    await new Promise((r) => setTimeout(r, 200));
    await ch.close();
    expect(errors).toEqual([]);
    expect(await remaining(queue)).toBe(1); // only the unfinished one is back
  });

  it('forgets a nacked message, so later acks cover the others without a channel error', async () => {
    const queue = await queueWith(5);
    const { ch, acks, got, errors } = await consumeAll(queue, 5);
    await waitFor(() => got.length === 5);
    acks.forget(got[0]!);
    ch.nack(got[0]!, false, false); // dropped (no dead-letter exchange on this queue)
    for (const m of got.slice(1)) acks.ack(m);
    await new Promise((r) => setTimeout(r, 200));
    // A double ack would have closed the channel with PRECONDITION_FAILED by now.
    await ch.close();
    expect(errors).toEqual([]);
    expect(await remaining(queue)).toBe(0);
  });
});
