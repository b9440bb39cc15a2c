import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { recordTestEmail } from '../../test/recorded-mail.js';
import { createMysqlBlobStore } from '../blobs/mysql-blob-store.js';
import { inBatchScope } from './batch-scope.js';
import { RowWriter, updateRow, updateRows } from './update-rows.js';

describe('updateRows (each row its own values, one statement)', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('updrows');
  });
  afterAll(async () => {
    await t?.drop();
  });

  /** An email with `n` pending attachments; their ids. */
  const attachments = async (n: number): Promise<string[]> => {
    const files = Array.from({ length: n }, (_, i) => ({
      name: `f${i}.png`,
      type: 'image/png',
      bytes: Buffer.from(`file ${i}`),
    }));
    const recorded = await recordTestEmail(t.db, createMysqlBlobStore(t.db), { files });
    return recorded.attachments.map((a) => a.id);
  };
  const rows = (ids: string[]) =>
    t.db
      .selectFrom('attachments')
      .select(['id', 'verdict', 'reason', 'image_width', 'analyzed_at', 'conversion_status'])
      .where('id', 'in', ids)
      .orderBy('seq')
      .execute();

  it('sets strings, numbers, NULLs and times per row, leaves other rows and columns alone', async () => {
    const [a, b, c, d] = await attachments(4);
    const at = new Date('2026-12-04T10:11:12.345Z');
    await t.db.transaction().execute((trx) =>
      updateRows(trx, 'attachments', [
        {
          id: b!,
          verdict: 'rejected',
          reason: `it's "odd" \\ ; DROP TABLE x`,
          image_width: null,
          analyzed_at: at,
        },
        { id: a!, verdict: 'accepted', reason: 'PNG image', image_width: 640, analyzed_at: null },
        // another set of columns: a statement of its own
        { id: c!, verdict: 'accepted', conversion_status: 'pending' },
        { id: randomUUID(), verdict: 'accepted', conversion_status: 'pending' }, // no such row
        { id: c!, verdict: 'quarantined', conversion_status: 'pending' }, // twice: the later wins
      ]),
    );
    expect(await rows([a!, b!, c!, d!])).toEqual([
      {
        id: a,
        verdict: 'accepted',
        reason: 'PNG image',
        image_width: 640,
        analyzed_at: null,
        conversion_status: null,
      },
      {
        id: b,
        verdict: 'rejected',
        reason: `it's "odd" \\ ; DROP TABLE x`,
        image_width: null,
        analyzed_at: at,
        conversion_status: null,
      },
      {
        id: c,
        verdict: 'quarantined',
        reason: null,
        image_width: null,
        analyzed_at: null,
        conversion_status: 'pending',
      },
      {
        id: d,
        verdict: 'pending',
        reason: null,
        image_width: null,
        analyzed_at: null,
        conversion_status: null,
      },
    ]);
  });

  it('leaves out undefined values, as a lone UPDATE through Kysely does', async () => {
    const [a, b] = await attachments(2);
    await t.db.updateTable('attachments').set({ reason: 'kept' }).where('id', 'in', [a!, b!]).execute();
    await t.db.transaction().execute((trx) =>
      inBatchScope(trx, async () => {
        await updateRow(trx, 'attachments', { id: a!, verdict: 'accepted', reason: undefined });
        await updateRow(trx, 'attachments', { id: b!, verdict: 'rejected' });
      }),
    );
    expect((await rows([a!, b!])).map((r) => [r.verdict, r.reason])).toEqual([
      ['accepted', 'kept'],
      ['rejected', 'kept'],
    ]);
  });

  it('updateRow writes at once alone, and at the end of a batch inside one (rolled back with it)', async () => {
    const [a, b] = await attachments(2);
    await t.db.transaction().execute((trx) => updateRow(trx, 'attachments', { id: a!, verdict: 'accepted' }));
    expect((await rows([a!]))[0]?.verdict).toBe('accepted');
    const seen = await t.db.transaction().execute((trx) =>
      inBatchScope(trx, async () => {
        await updateRow(trx, 'attachments', { id: b!, verdict: 'rejected' });
        // not yet written: the batch's rows go in one statement at its end
        return (await trx.selectFrom('attachments').select('verdict').where('id', '=', b!).executeTakeFirst())
          ?.verdict;
      }),
    );
    expect(seen).toBe('pending');
    expect((await rows([b!]))[0]?.verdict).toBe('rejected');
    await expect(
      t.db.transaction().execute((trx) =>
        inBatchScope(trx, async () => {
          await updateRow(trx, 'attachments', { id: a!, verdict: 'quarantined' });
          throw new Error('a neighbour failed');
        }),
      ),
    ).rejects.toThrow('a neighbour failed');
    expect((await rows([a!]))[0]?.verdict).toBe('accepted');
  });

  it('RowWriter commits the rows set in one turn together, and fails them together', async () => {
    const [a, b, c] = await attachments(3);
    const writer = new RowWriter(t.db, 'attachments');
    await Promise.all([
      writer.set({ id: a!, verdict: 'accepted' }),
      writer.set({ id: b!, verdict: 'rejected', reason: 'no' }),
    ]);
    // durable once resolved: another connection reads them
    expect((await rows([a!, b!])).map((r) => [r.verdict, r.reason])).toEqual([
      ['accepted', null],
      ['rejected', 'no'],
    ]);
    const failed = await Promise.allSettled([
      writer.set({ id: c!, verdict: 'quarantined' }),
      writer.set({ id: a!, verdict: 'x'.repeat(10_000) }), // longer than the column: the commit fails
    ]);
    expect(failed.map((f) => f.status)).toEqual(['rejected', 'rejected']);
    expect((await rows([a!, c!])).map((r) => r.verdict)).toEqual(['accepted', 'pending']);
  });
});
