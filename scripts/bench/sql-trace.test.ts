import { describe, expect, it } from 'vitest';
import { sqlKind } from './sql-trace.js';

describe('sqlKind', () => {
  it('names a statement by its verb and table, as Kysely writes them', () => {
    expect(sqlKind('select `event_id` from `inbox` where `consumer` = ?')).toBe('select inbox');
    expect(sqlKind('select `id` from `emails` where `id` = ? for update')).toBe('select emails for update');
    expect(sqlKind('insert ignore into `blobs` (`sha256`) values (?)')).toBe('insert blobs');
    expect(sqlKind('insert into `outbox` (`event_id`) values (?), (?)')).toBe('insert outbox');
    expect(sqlKind('update `attachments` set `verdict` = ?')).toBe('update attachments');
    expect(sqlKind('delete from `outbox` where `sent_at` < ? limit ?')).toBe('delete outbox');
    expect(sqlKind('SELECT GET_LOCK(?, 60) AS ok')).toBe('select get_lock');
    expect(sqlKind('begin')).toBe('begin');
    expect(sqlKind('set transaction isolation level read committed')).toBe('set transaction');
    expect(sqlKind('SELECT 1')).toBe('select (no table)');
  });
});
