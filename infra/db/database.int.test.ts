import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { migrateToLatest } from './database.js';

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
});
