import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { openDatabase, type DatabaseHandle } from './database.js';
import { LOCK_BUSY, MAX_LOCK_HOLDERS, withNamedLock } from './named-lock.js';

describe('named locks', () => {
  let t: TestDatabase;
  let handle: DatabaseHandle;
  beforeAll(async () => {
    t = await createTestDatabase('namedlock');
    handle = openDatabase(t.url); // the pool Postroom runs with (10 connections)
  });
  afterAll(async () => {
    await handle?.db.destroy();
    await t?.drop();
  });

  it('lets many holders at once do database work of their own without pinning the whole pool', async () => {
    // Twelve consumers each take a lock of their own and, holding it, write through the pool (as the
    // Drive consumer reserves a file id): with every holder pinning a connection, ten would have
    // taken all ten and waited forever for an eleventh.
    let inside = 0;
    let most = 0;
    const work = Array.from({ length: 12 }, (_, i) =>
      withNamedLock(handle.db, `postroom:test:${t.name}:${i}`, 5, async () => {
        inside += 1;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 50));
        const row = await sql<{ n: number }>`SELECT ${i} AS n`.execute(handle.db);
        inside -= 1;
        return Number(row.rows[0]?.n);
      }),
    );
    const results = await Promise.race([
      Promise.all(work),
      new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), 20_000)),
    ]);
    expect(results).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(most).toBeLessThanOrEqual(MAX_LOCK_HOLDERS);
  });

  it('answers LOCK_BUSY when another session holds the lock past the wait, and gives its place back', async () => {
    const name = `postroom:test:${t.name}:busy`;
    await handle.db.connection().execute(async (conn) => {
      await sql`SELECT GET_LOCK(${name}, 0)`.execute(conn);
      try {
        expect(await withNamedLock(handle.db, name, 0, async () => 'ran')).toBe(LOCK_BUSY);
      } finally {
        await sql`SELECT RELEASE_LOCK(${name})`.execute(conn);
      }
    });
    // Every place is free again: as many holders as allowed run at once.
    const all = await Promise.all(
      Array.from({ length: MAX_LOCK_HOLDERS }, (_, i) =>
        withNamedLock(handle.db, `${name}:${i}`, 1, async () => i),
      ),
    );
    expect(all).toEqual(Array.from({ length: MAX_LOCK_HOLDERS }, (_, i) => i));
  });
});
