import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { completeEmailIfFinal } from '../../consumers/drive-upload/email-completion.js';
import { recordEmail } from '../db/repositories/emails.repository.js';
import { emailReceivedEvent } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { CommitBatcher } from './commit-batcher.js';
import { createEvent } from './events.js';
import { DUPLICATE } from './handler.js';
import type { EmailProcessedV1 } from '../../contracts/index.js';

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
    emailReceivedEvent({ emailId, subject: 'Batch', from: 'a@test', receivedAt: new Date(0).toISOString() });
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

  const attachment = (seq: number) => ({
    id: randomUUID(),
    parentId: null,
    filename: `f${seq}.pdf`,
    originalFilename: `f${seq}.pdf`,
    declaredType: 'application/pdf',
    disposition: 'attachment' as const,
    contentId: null,
    size: 1,
    sha256: '0'.repeat(64),
    stored: true,
  });
  /** An email with `n` attachments, all analysed, none filed yet. */
  const email = async (n: number) => {
    const atts = Array.from({ length: n }, (_, i) => attachment(i));
    const { emailId } = await recordEmail(t.db, {
      source: 'imap',
      mailbox: 'INBOX',
      uid: Math.floor(Math.random() * 1e9),
      uidValidity: '1',
      receivedAt: new Date(),
      parsed: {
        messageId: `${randomUUID()}@test`,
        subject: 's',
        from: 'a@test',
        size: 1,
        warnings: [],
        attachments: atts,
      },
    });
    await t.db
      .updateTable('attachments')
      .set({ verdict: 'accepted' })
      .where('email_id', '=', emailId)
      .execute();
    return { emailId, ids: atts.map((a) => a.id) };
  };
  const ctx = {
    event: (type: never, data: never) => createEvent(type, data, { correlationId: 'c', causationId: null }),
  };
  const finish =
    (emailId: string, attachmentId: string) =>
    async (
      trx: Parameters<Parameters<CommitBatcher['commit']>[1]>[0],
      emit: Parameters<Parameters<CommitBatcher['commit']>[1]>[1],
    ) => {
      await trx
        .updateTable('attachments')
        .set({ drive_status: 'uploaded' })
        .where('id', '=', attachmentId)
        .execute();
      return completeEmailIfFinal(trx, emailId, emit, ctx as never);
    };

  /** The emails' statuses, in id order. */
  const statuses = async (...emailIds: string[]) =>
    (
      await t.db.selectFrom('emails').select('status').where('id', 'in', emailIds).orderBy('id').execute()
    ).map((r) => r.status);
  /** The `email.processed` events in the outbox about these emails. */
  const processed = async (...emailIds: string[]) =>
    (
      await t.db
        .selectFrom('outbox')
        .select('body')
        .where('routing_key', '=', 'email.processed')
        .where('correlation_id', '=', 'c')
        .execute()
    )
      .map((r) => (JSON.parse(r.body) as { data: EmailProcessedV1['data'] }).data)
      .filter((d) => emailIds.includes(d.emailId));

  it('closes an email whose last two attachments are finished at once, one of them inside a batch that read before', async () => {
    // Two emails: E1 with attachments a1, a2; E2 with b1.
    const e1 = await email(2);
    const e2 = await email(1);
    // Another consumer finishes a1 and holds E1's row lock until released.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let lockedE1!: () => void;
    const e1Locked = new Promise<void>((r) => (lockedE1 = r));
    const other = new CommitBatcher(t.db, 'other-drive').commit(randomUUID(), async (trx, emit) => {
      await finish(e1.emailId, e1.ids[0]!)(trx, emit);
      lockedE1();
      await held;
    });
    await e1Locked;
    // Meanwhile a batch finishes b1 (closing E2: a read of attachments) and then a2, waiting for E1's lock.
    const batcher = new CommitBatcher(t.db, 'drive');
    let reachedA2!: () => void;
    const a2Started = new Promise<void>((r) => (reachedA2 = r));
    const batch = Promise.all([
      batcher.commit(randomUUID(), finish(e2.emailId, e2.ids[0]!)),
      batcher.commit(randomUUID(), async (trx, emit) => {
        reachedA2();
        return finish(e1.emailId, e1.ids[1]!)(trx, emit);
      }),
    ]);
    await a2Started;
    await new Promise((r) => setTimeout(r, 300)); // the batch is now waiting for E1's row lock
    release();

    // Exactly one of the two closes E1, whichever order the locks were granted in.
    await Promise.all([other, batch]);
    expect(await statuses(e1.emailId, e2.emailId)).toEqual(['done', 'done']);
    const events = await processed(e1.emailId, e2.emailId);
    expect(events.map((d) => d.emailId).sort()).toEqual([e1.emailId, e2.emailId].sort()); // E1 once, E2 once
  });

  it('closes an email once when a batch finishes all its attachments, with one check for the batch', async () => {
    const e1 = await email(3);
    const e2 = await email(1);
    const batcher = new CommitBatcher(t.db, 'drive-all');
    const done = [...e1.ids.map((id) => [e1.emailId, id]), [e2.emailId, e2.ids[0]!]] as const;
    await Promise.all(done.map(([emailId, id]) => batcher.commit(randomUUID(), finish(emailId, id))));
    expect(await statuses(e1.emailId, e2.emailId)).toEqual(['done', 'done']);
    // one event per email, each listing every attachment final
    const ours = await processed(e1.emailId, e2.emailId);
    const byEmail = new Map(ours.map((d) => [d.emailId, d.attachments.length]));
    expect(byEmail).toEqual(
      new Map([
        [e1.emailId, 3],
        [e2.emailId, 1],
      ]),
    );
    expect(ours).toHaveLength(2);
    const closing = await t.db
      .selectFrom('timeline')
      .select('email_id')
      .where('event', '=', 'email.processed')
      .where('email_id', 'in', [e1.emailId, e2.emailId])
      .execute();
    expect(closing).toHaveLength(2);
  });
});
