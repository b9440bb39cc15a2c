import { sql, type Kysely } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations are frozen in time: they must not
   follow later changes of the Database type. */

/** `drive_folders`: one row per Drive folder made on demand, claimed before it is created. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('drive_folders')
    .addColumn('parent_id', 'varchar(128)', (c) => c.notNull())
    .addColumn('name_hash', 'char(64)', (c) => c.notNull())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('folder_id', 'varchar(128)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('claimed_by', 'varchar(128)', (c) => c.notNull())
    .addColumn('claimed_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('ready_at', sql`datetime(3)`)
    .addPrimaryKeyConstraint('drive_folders_pk', ['parent_id', 'name_hash'])
    .execute();
  await db.schema.createIndex('drive_folders_folder_id').on('drive_folders').column('folder_id').execute();
}

/** Drops `drive_folders`. */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('drive_folders').execute();
}
