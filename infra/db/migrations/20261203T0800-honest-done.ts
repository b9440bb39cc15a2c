import { sql, type Kysely } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations are frozen in time: they must not
   follow later changes of the Database type. */

/**
 * An honest `done`: `hooks` (the hooks the outbound role calls, so that the calls of an event are
 * recorded with the event), and drive status `not-filed` for quarantined and rejected attachments,
 * which were `skipped` before (`skipped` now only means "identical bytes already filed").
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('hooks')
    .addColumn('name', 'varchar(100)', (c) => c.primaryKey())
    .addColumn('events', 'text', (c) => c.notNull())
    .addColumn('registered_at', sql`datetime(3)`, (c) => c.notNull())
    .execute();
  await db
    .updateTable('attachments')
    .set({ drive_status: 'not-filed' })
    .where('drive_status', '=', 'skipped')
    .where('verdict', 'in', ['quarantined', 'rejected'])
    .execute();
}

/** Drops `hooks` and calls unfiled attachments `skipped` again. */
export async function down(db: Kysely<any>): Promise<void> {
  await db
    .updateTable('attachments')
    .set({ drive_status: 'skipped' })
    .where('drive_status', '=', 'not-filed')
    .execute();
  await db.schema.dropTable('hooks').execute();
}
