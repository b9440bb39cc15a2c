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
    const holders = new Set<number>();
    const work = Array.from({ length: 40 }, (_, i) =>
      withNamedLock(handle.db, `postroom:test:${t.name}:${i}`, 5, async () => {
        // the connection holding this lock
        const held = await sql<{
          id: number;
        }>`SELECT IS_USED_LOCK(${`postroom:test:${t.name}:${i}`}) AS id`.execute(handle.db);
        holders.add(Number(held.rows[0]?.id));
        await new Promise((r) => setTimeout(r, 50));
        const row = await sql<{ n: number }>`SELECT ${i} AS n`.execute(handle.db);
        return Number(row.rows[0]?.n);
      }),
    );
    const results = await Promise.race([
      Promise.all(work),
      new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), 20_000)),
    ]);
    expect(results).toEqual(Array.from({ length: 40 }, (_, i) => i));
    expect(holders.size).toBeGreaterThan(0);
    expect(holders.size).toBeLessThanOrEqual(MAX_LOCK_HOLDERS);
  });

  it('takes the locks asked for together at once, and waits alone for one held elsewhere or asked twice', async () => {
    const name = (k: string) => `postroom:test:${t.name}:group:${k}`;
    const ran: string[] = [];
    const inside = new Set<string>();
    let overlapped = false;
    const job = (k: string, ms: number) => async () => {
      if (inside.has(k)) overlapped = true; // two holders of one name at once
      inside.add(k);
      await new Promise((r) => setTimeout(r, ms));
      inside.delete(k);
      ran.push(k);
      return k;
    };
    await handle.db.connection().execute(async (other) => {
      await sql`SELECT GET_LOCK(${name('x')}, 0) AS ok`.execute(other);
      const asked = Promise.all([
        withNamedLock(handle.db, name('x'), 5, job('x', 10)),
        withNamedLock(handle.db, name('y'), 5, job('y', 50)),
        withNamedLock(handle.db, name('y'), 5, job('y', 10)),
        withNamedLock(handle.db, name('z'), 0, job('z', 10)),
      ]);
      // y and z do not wait for x, held by another session
      await new Promise((r) => setTimeout(r, 400));
      expect(ran).toEqual(expect.arrayContaining(['y', 'y', 'z']));
      expect(ran).not.toContain('x');
      await sql`SELECT RELEASE_LOCK(${name('x')}) AS released`.execute(other);
      expect(await asked).toEqual(['x', 'y', 'y', 'z']);
    });
    expect(overlapped).toBe(false);
    // and every lock was given back: another session takes them all at once
    await handle.db.connection().execute(async (conn) => {
      const got = await sql<
        Record<string, number>
      >`SELECT GET_LOCK(${name('x')}, 0) AS x, GET_LOCK(${name('y')}, 0) AS y, GET_LOCK(${name('z')}, 0) AS z`.execute(
        conn,
      );
      expect(got.rows[0]).toEqual({ x: 1, y: 1, z: 1 });
      await sql`SELECT RELEASE_ALL_LOCKS() AS n`.execute(conn);
    });
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
