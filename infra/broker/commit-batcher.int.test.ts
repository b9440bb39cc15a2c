import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { CommitBatcher } from './commit-batcher.js';
import { createEvent } from './events.js';
import { DUPLICATE } from './handler.js';

describe('CommitBatcher (the commits of several messages in one transaction)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('commitb');
  });
  afterAll(async () => {
    await t?.drop();
  });

  const inbox = (consumer: string) =>
    t.db.selectFrom('inbox').select('event_id').where('consumer', '=', consumer).execute();
  /** The effect of a commit: a checkpoint row named after the message. */
  const effects = (account: string) =>
    t.db.selectFrom('imap_checkpoints').select('mailbox').where('account', '=', account).execute();
  const received = (emailId: string) =>
    createEvent(
      'email.received',
      {
        emailId,
        messageId: `${emailId}@test`,
        source: 'imap',
        subject: 'Batch',
        from: 'a@test',
        receivedAt: new Date(0).toISOString(),
        attachmentCount: 0,
        warnings: [],
        chatId: null,
      },
      { correlationId: emailId, causationId: null },
    );
  /** A commit of message `name`: one effect row and one event. */
  const work =
    (account: string, name: string, seen?: Set<unknown>) =>
    async (
      trx: Parameters<Parameters<CommitBatcher['commit']>[1]>[0],
      emit: (e: ReturnType<typeof received>) => void,
    ) => {
      seen?.add(trx);
      await trx
        .insertInto('imap_checkpoints')
        .values({ account, mailbox: name, uid_validity: '1', last_uid: 0, updated_at: new Date() })
        .execute();
      emit(received(randomUUID()));
      return name;
    };

  it('commits messages arriving together in one transaction, each with its inbox row, effect and event', async () => {
    const batcher = new CommitBatcher(t.db, 'together');
    const ids = Array.from({ length: 10 }, () => randomUUID());
    const transactions = new Set<unknown>();
    const results = await Promise.all(
      ids.map((id, i) => batcher.commit(id, work('together', `m${i}`, transactions))),
    );
    expect(results).toEqual(ids.map((_, i) => `m${i}`));
    expect(transactions.size).toBe(1);
    expect((await inbox('together')).map((r) => r.event_id).sort()).toEqual([...ids].sort());
    expect(await effects('together')).toHaveLength(10);
    const outbox = await t.db.selectFrom('outbox').select('event_id').execute();
    expect(outbox.length).toBeGreaterThanOrEqual(10);
  });

  it('lets a failing message fail alone: its neighbours commit, it writes nothing', async () => {
    const batcher = new CommitBatcher(t.db, 'failing');
    const ids = Array.from({ length: 5 }, () => randomUUID());
    const results = await Promise.allSettled(
      ids.map((id, i) =>
        batcher.commit(
          id,
          i === 2
            ? async (trx) => {
                await work('failing', 'm2')(trx, () => undefined);
                throw new Error('this message breaks');
              }
            : work('failing', `m${i}`),
        ),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
    ]);
    expect((await effects('failing')).map((r) => r.mailbox).sort()).toEqual(['m0', 'm1', 'm3', 'm4']);
    expect((await inbox('failing')).map((r) => r.event_id).sort()).toEqual(
      [ids[0], ids[1], ids[3], ids[4]].sort(),
    );
  });

  it('answers DUPLICATE for an event already in the inbox, and commits the others of its batch', async () => {
    const batcher = new CommitBatcher(t.db, 'repeat');
    const old = randomUUID();
    expect(await batcher.commit(old, work('repeat', 'first'))).toBe('first');
    const fresh = [randomUUID(), randomUUID()];
    const results = await Promise.all([
      batcher.commit(fresh[0]!, work('repeat', 'a')),
      batcher.commit(old, work('repeat', 'again')),
      batcher.commit(fresh[1]!, work('repeat', 'b')),
    ]);
    expect(results).toEqual(['a', DUPLICATE, 'b']);
    expect((await effects('repeat')).map((r) => r.mailbox).sort()).toEqual(['a', 'b', 'first']);
  });
});
