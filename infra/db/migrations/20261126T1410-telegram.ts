import { sql, type Kysely } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations are frozen in time: they must not
   follow later changes of the Database type. */

/**
 * `notifications` (one per processed email and chat, unique on both, so a chat is told once even when
 * `email.processed` is delivered again), `telegram_chats` (who the bot talks to and who is subscribed)
 * and `telegram_updates` (update ids the webhook accepted, so a repeated update is published once).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('notifications')
    .addColumn('id', 'char(36)', (c) => c.primaryKey())
    .addColumn('email_id', 'char(36)', (c) => c.notNull())
    .addColumn('chat_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('telegram_message_id', 'bigint')
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('updated_at', sql`datetime(3)`, (c) => c.notNull())
    .addUniqueConstraint('notifications_email_chat', ['email_id', 'chat_id'])
    .execute();
  // Agreed with the status API (the unique key above would serve email_id lookups as well).
  await db.schema.createIndex('notifications_email_id').on('notifications').column('email_id').execute();

  await db.schema
    .createTable('telegram_chats')
    .addColumn('chat_id', 'varchar(32)', (c) => c.primaryKey())
    .addColumn('type', 'varchar(32)', (c) => c.notNull())
    .addColumn('subscribed', sql`tinyint`, (c) => c.notNull().defaultTo(0))
    .addColumn('title', 'varchar(255)')
    .addColumn('username', 'varchar(64)')
    .addColumn('first_name', 'varchar(255)')
    .addColumn('last_name', 'varchar(255)')
    .addColumn('state_update_id', 'bigint')
    .addColumn('unsubscribed_reason', 'varchar(16)')
    .addColumn('subscribed_at', sql`datetime(3)`)
    .addColumn('unsubscribed_at', sql`datetime(3)`)
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('updated_at', sql`datetime(3)`, (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('telegram_chats_subscribed')
    .on('telegram_chats')
    .column('subscribed')
    .execute();

  await db.schema
    .createTable('telegram_updates')
    .addColumn('bot_id', 'bigint', (c) => c.notNull())
    .addColumn('update_id', 'bigint', (c) => c.notNull())
    .addColumn('received_at', sql`datetime(3)`, (c) => c.notNull())
    .addPrimaryKeyConstraint('telegram_updates_pk', ['bot_id', 'update_id'])
    .execute();
  await db.schema
    .createIndex('telegram_updates_received_at')
    .on('telegram_updates')
    .column('received_at')
    .execute();
}

/** Drops the three tables. */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('telegram_updates').execute();
  await db.schema.dropTable('telegram_chats').execute();
  await db.schema.dropTable('notifications').execute();
}
