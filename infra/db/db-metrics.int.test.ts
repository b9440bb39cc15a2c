/**
 * The database metrics on a real MariaDB: statement time by kind, connections in use, callers waiting
 * for an exhausted pool, and the time they waited.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { registry } from '../metrics.js';
import { openDatabase, type DatabaseHandle } from './database.js';
import { statementKind } from './db-metrics.js';

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase('dbmetrics');
});
afterAll(async () => {
  await t?.drop();
});

/** The current value of one series of a metric, 0 when absent. */
async function value(name: string, labels: Record<string, string> = {}): Promise<number> {
  const base = name.replace(/_count$/, '');
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === base);
  const series = (m?.values ?? []) as Array<{
    value: number;
    labels: Record<string, unknown>;
    metricName?: string;
  }>;
  const hit = series.find(
    (v) =>
      (v.metricName ?? base) === name &&
      Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return hit?.value ?? 0;
}

describe('database metrics', () => {
  it('names statement kinds the way an operator reads them', () => {
    expect(statementKind('select 1')).toBe('select');
    expect(statementKind('  INSERT INTO x VALUES (1)')).toBe('insert');
    expect(statementKind('(select 1) union (select 2)')).toBe('select');
    expect(statementKind('SELECT GET_LOCK(?, 1)')).toBe('select');
    expect(statementKind('create table x (a int)')).toBe('other');
  });

  it('times every statement by kind', async () => {
    const before = await value('postroom_db_query_duration_seconds_count', { kind: 'insert', outcome: 'ok' });
    await sql`INSERT INTO postroom_migrations_lock (id, is_locked) VALUES ('metrics-test', 0)`.execute(t.db);
    expect(
      await value('postroom_db_query_duration_seconds_count', { kind: 'insert', outcome: 'ok' }),
    ).toBeGreaterThan(before);
    const errorsBefore = await value('postroom_db_query_duration_seconds_count', {
      kind: 'select',
      outcome: 'error',
    });
    await expect(sql`SELECT * FROM no_such_table`.execute(t.db)).rejects.toThrow();
    expect(
      await value('postroom_db_query_duration_seconds_count', { kind: 'select', outcome: 'error' }),
    ).toBe(errorsBefore + 1);
  });

  it('shows connections in use and callers waiting while a pool is exhausted', async () => {
    const one: DatabaseHandle = openDatabase(t.url, { connectionLimit: 1 });
    try {
      const inUseBefore = await value('postroom_db_pool_connections_in_use');
      const acquiredBefore = await value('postroom_db_pool_acquire_seconds_count');
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      const holder = one.db.transaction().execute(async (trx) => {
        await sql`SELECT 1`.execute(trx);
        await held;
      });
      await new Promise((r) => setTimeout(r, 100));
      const waiter = sql`SELECT 2`.execute(one.db);
      await new Promise((r) => setTimeout(r, 100));
      expect(await value('postroom_db_pool_connections_in_use')).toBe(inUseBefore + 1);
      expect(await value('postroom_db_pool_waiting')).toBe(1);
      release();
      await holder;
      await waiter;
      expect(await value('postroom_db_pool_waiting')).toBe(0);
      expect(await value('postroom_db_pool_acquire_seconds_count')).toBe(acquiredBefore + 2);
    } finally {
      await one.db.destroy();
    }
  });
});
