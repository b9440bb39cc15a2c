import { sql, type Kysely } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations are frozen in time: they must not
   follow later changes of the Database type. */

/**
 * `calls` (one outbound hook call per hook and event, unique on both, so a redelivered event never
 * makes a second call) and `call_attempts` (every try of a call, for the status API).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('calls')
    .addColumn('id', 'char(36)', (c) => c.primaryKey())
    .addColumn('hook', 'varchar(100)', (c) => c.notNull())
    .addColumn('event_id', 'char(36)', (c) => c.notNull())
    .addColumn('event_type', 'varchar(64)', (c) => c.notNull())
    .addColumn('email_id', 'char(36)')
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_status_code', 'integer')
    .addColumn('last_error', 'text')
    .addColumn('idempotency_key', 'varchar(100)', (c) => c.notNull())
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('updated_at', sql`datetime(3)`, (c) => c.notNull())
    .addUniqueConstraint('calls_hook_event', ['hook', 'event_id'])
    .execute();
  await db.schema.createIndex('calls_email_id').on('calls').column('email_id').execute();

  await db.schema
    .createTable('call_attempts')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('call_id', 'char(36)', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('duration_ms', 'integer', (c) => c.notNull())
    .addColumn('error', 'text')
    .addColumn('at', sql`datetime(3)`, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('call_attempts_call_id').on('call_attempts').column('call_id').execute();
}

/** Drops `call_attempts` and `calls`. */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('call_attempts').execute();
  await db.schema.dropTable('calls').execute();
}
