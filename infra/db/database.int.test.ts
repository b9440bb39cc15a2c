import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import type { Transaction } from 'kysely';
import { isLockConflict, migrateToLatest, transactionWithRetry, type Database } from './database.js';

describe('database', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('database');
  });
  afterAll(async () => t?.drop());

  it('creates the missing database and runs every migration, and a second run changes nothing', async () => {
    const tables = await sql<{
      n: string;
    }>`SELECT table_name AS n FROM information_schema.tables WHERE table_schema = ${t.name}`.execute(t.db);
    const names = tables.rows.map((r) => r.n);
    expect(names).toEqual(
      expect.arrayContaining(['outbox', 'inbox', 'dead_letters', 'emails', 'attachments', 'blobs']),
    );
    const again = await migrateToLatest(t.db as never);
    expect(again.results).toEqual([]);
  });

  it('stores and reads timestamps as UTC with milliseconds', async () => {
    const at = new Date('2026-11-26T10:11:12.345Z');
    await t.db.insertInto('inbox').values({ consumer: 'c', event_id: 'e', processed_at: at }).execute();
    const row = await t.db.selectFrom('inbox').selectAll().executeTakeFirstOrThrow();
    expect(row.processed_at.toISOString()).toBe(at.toISOString());
  });

  it('tries a deadlock victim again, so both sides of a real deadlock commit', async () => {
    await t.db
      .insertInto('inbox')
      .values([
        { consumer: 'deadlock', event_id: 'a', processed_at: new Date() },
        { consumer: 'deadlock', event_id: 'b', processed_at: new Date() },
      ])
      .execute();
    const lock = (trx: Transaction<Database>, id: string) =>
      trx
        .selectFrom('inbox')
        .select('event_id')
        .where('consumer', '=', 'deadlock')
        .where('event_id', '=', id)
        .forUpdate()
        .execute();
    // Each side locks one row, waits until the other holds its row too, then wants the other's row:
    // InnoDB rolls one of them back with a deadlock (1213), on its first run only.
    let held = 0;
    const bothHeld = async () => {
      held += 1;
      for (let i = 0; held < 2 && i < 200; i++) await new Promise((r) => setTimeout(r, 10));
    };
    const runs = { ab: 0, ba: 0 };
    const side = (first: 'a' | 'b', second: 'a' | 'b', key: 'ab' | 'ba') =>
      transactionWithRetry(t.db, async (trx) => {
        runs[key] += 1;
        await lock(trx, first);
        if (runs[key] === 1) await bothHeld();
        await lock(trx, second);
        await trx
          .updateTable('inbox')
          .set({ processed_at: new Date() })
          .where('consumer', '=', 'deadlock')
          .where('event_id', '=', first)
          .execute();
        return key;
      });
    await expect(Promise.all([side('a', 'b', 'ab'), side('b', 'a', 'ba')])).resolves.toEqual(['ab', 'ba']);
    expect(runs.ab + runs.ba).toBe(3); // one of them ran twice
    // Without the retry, the victim's error reaches the caller.
    held = 0;
    const plain = (first: string, second: string) =>
      t.db.transaction().execute(async (trx) => {
        await lock(trx, first);
        await bothHeld();
        await lock(trx, second);
      });
    const outcomes = await Promise.allSettled([plain('a', 'b'), plain('b', 'a')]);
    expect(
      outcomes
        .filter((o) => o.status === 'rejected')
        .map((o) => isLockConflict((o as PromiseRejectedResult).reason)),
    ).toEqual([true]);
  });
});
