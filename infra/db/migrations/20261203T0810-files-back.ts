import { sql, type Kysely } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations are frozen in time: they must not
   follow later changes of the Database type. */

/**
 * `telegram_file_sends` (one row per update asking for a file, so a redelivered update sends the file
 * once) and `drive_intake_state` (the Drive changes page token of the intake folder, so a restart
 * neither misses nor repeats a file).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('telegram_file_sends')
    .addColumn('chat_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('update_id', 'bigint', (c) => c.notNull())
    .addColumn('attachment_id', 'char(36)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('telegram_message_id', 'bigint')
    .addColumn('detail', 'text')
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('updated_at', sql`datetime(3)`, (c) => c.notNull())
    .addPrimaryKeyConstraint('telegram_file_sends_pk', ['chat_id', 'update_id'])
    .execute();
  await db.schema
    .createTable('drive_intake_state')
    .addColumn('folder_id', 'varchar(128)', (c) => c.primaryKey())
    .addColumn('page_token', 'varchar(255)', (c) => c.notNull())
    .addColumn('updated_at', sql`datetime(3)`, (c) => c.notNull())
    .execute();
}

/** Drops both tables. */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('drive_intake_state').execute();
  await db.schema.dropTable('telegram_file_sends').execute();
}
