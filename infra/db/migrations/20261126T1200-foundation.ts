import { sql, type Kysely } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations are frozen in time: they must not
   follow later changes of the Database type. */

/** Outbox, inbox, dead letters, blobs, emails, attachments, timeline and IMAP checkpoints. */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('outbox')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('event_id', 'char(36)', (c) => c.notNull().unique())
    .addColumn('exchange', 'varchar(200)', (c) => c.notNull())
    .addColumn('routing_key', 'varchar(200)', (c) => c.notNull())
    .addColumn('body', sql`longtext`, (c) => c.notNull())
    .addColumn('correlation_id', 'varchar(200)', (c) => c.notNull())
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('sent_at', sql`datetime(3)`)
    .execute();
  await db.schema.createIndex('outbox_pending').on('outbox').columns(['sent_at', 'id']).execute();

  await db.schema
    .createTable('inbox')
    .addColumn('consumer', 'varchar(64)', (c) => c.notNull())
    .addColumn('event_id', 'char(36)', (c) => c.notNull())
    .addColumn('processed_at', sql`datetime(3)`, (c) => c.notNull())
    .addPrimaryKeyConstraint('inbox_pk', ['consumer', 'event_id'])
    .execute();
  await db.schema.createIndex('inbox_processed_at').on('inbox').column('processed_at').execute();

  await db.schema
    .createTable('dead_letters')
    .addColumn('id', 'char(36)', (c) => c.primaryKey())
    .addColumn('dedupe_key', 'varchar(255)', (c) => c.notNull().unique())
    .addColumn('consumer', 'varchar(64)', (c) => c.notNull())
    .addColumn('queue', 'varchar(200)', (c) => c.notNull())
    .addColumn('event_id', 'varchar(64)')
    .addColumn('event_type', 'varchar(100)')
    .addColumn('correlation_id', 'varchar(200)')
    .addColumn('body', sql`longtext`, (c) => c.notNull())
    .addColumn('headers', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('parked_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('replayed_at', sql`datetime(3)`)
    .execute();
  await db.schema
    .createIndex('dead_letters_parked')
    .on('dead_letters')
    .columns(['replayed_at', 'parked_at'])
    .execute();

  await db.schema
    .createTable('blobs')
    .addColumn('sha256', 'char(64)', (c) => c.primaryKey())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('chunk_count', 'integer', (c) => c.notNull())
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('blob_chunks')
    .addColumn('blob_key', 'varchar(80)', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('data', sql`mediumblob`, (c) => c.notNull())
    .addPrimaryKeyConstraint('blob_chunks_pk', ['blob_key', 'seq'])
    .execute();

  await db.schema
    .createTable('emails')
    .addColumn('id', 'char(36)', (c) => c.primaryKey())
    .addColumn('message_id', 'varchar(998)', (c) => c.notNull())
    .addColumn('message_id_hash', 'char(64)', (c) => c.notNull().unique())
    .addColumn('source', 'varchar(16)', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('from_address', 'varchar(320)', (c) => c.notNull())
    .addColumn('received_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('warnings', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('attachment_count', 'integer', (c) => c.notNull())
    .addColumn('mailbox', 'varchar(200)')
    .addColumn('uid', 'bigint')
    .addColumn('uid_validity', 'varchar(20)')
    .addColumn('imap_after_at', sql`datetime(3)`)
    .addColumn('chat_id', 'varchar(32)')
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('done_at', sql`datetime(3)`)
    .execute();
  await db.schema.createIndex('emails_created').on('emails').columns(['created_at', 'id']).execute();
  await db.schema.createIndex('emails_status').on('emails').columns(['status', 'created_at']).execute();
  await db.schema.createIndex('emails_from').on('emails').columns(['from_address', 'created_at']).execute();
  await db.schema
    .createIndex('emails_imap_after')
    .on('emails')
    .columns(['imap_after_at', 'mailbox'])
    .execute();

  await db.schema
    .createTable('attachments')
    .addColumn('id', 'char(36)', (c) => c.primaryKey())
    .addColumn('email_id', 'char(36)', (c) => c.notNull())
    .addColumn('parent_id', 'char(36)')
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('filename', 'varchar(255)', (c) => c.notNull())
    .addColumn('original_filename', 'text', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('sha256', 'char(64)', (c) => c.notNull())
    .addColumn('stored', 'smallint', (c) => c.notNull())
    .addColumn('declared_type', 'varchar(255)', (c) => c.notNull())
    .addColumn('detected_type', 'varchar(255)')
    .addColumn('disposition', 'varchar(16)', (c) => c.notNull())
    .addColumn('content_id', 'varchar(255)')
    .addColumn('verdict', 'varchar(16)', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('image_width', 'integer')
    .addColumn('image_height', 'integer')
    .addColumn('image_format', 'varchar(32)')
    .addColumn('image_orientation', 'smallint')
    .addColumn('thumbnail_sha256', 'char(64)')
    .addColumn('analyzed_at', sql`datetime(3)`)
    .addColumn('drive_status', 'varchar(16)', (c) => c.notNull())
    .addColumn('drive_file_id', 'varchar(200)')
    .addColumn('drive_link', 'text')
    .addColumn('drive_folder', 'varchar(1000)')
    .addColumn('uploaded_at', sql`datetime(3)`)
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .execute();
  await db.schema.createIndex('attachments_email').on('attachments').columns(['email_id', 'seq']).execute();
  await db.schema.createIndex('attachments_sha').on('attachments').column('sha256').execute();

  await db.schema
    .createTable('timeline')
    .addColumn('id', 'bigint', (c) => c.primaryKey().autoIncrement())
    .addColumn('email_id', 'char(36)', (c) => c.notNull())
    .addColumn('at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('stage', 'varchar(32)', (c) => c.notNull())
    .addColumn('event', 'varchar(64)', (c) => c.notNull())
    .addColumn('detail', 'text')
    .execute();
  await db.schema.createIndex('timeline_email').on('timeline').columns(['email_id', 'id']).execute();

  await db.schema
    .createTable('imap_checkpoints')
    .addColumn('account', 'varchar(320)', (c) => c.notNull())
    .addColumn('mailbox', 'varchar(200)', (c) => c.notNull())
    .addColumn('uid_validity', 'varchar(20)', (c) => c.notNull())
    .addColumn('last_uid', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', sql`datetime(3)`, (c) => c.notNull())
    .addPrimaryKeyConstraint('imap_checkpoints_pk', ['account', 'mailbox'])
    .execute();
}

/** Drops every table of this migration. */
export async function down(db: Kysely<any>): Promise<void> {
  for (const t of [
    'imap_checkpoints',
    'timeline',
    'attachments',
    'emails',
    'blob_chunks',
    'blobs',
    'dead_letters',
    'inbox',
    'outbox',
  ])
    await db.schema.dropTable(t).ifExists().execute();
}
