import { sql, type Kysely } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations are frozen in time: they must not
   follow later changes of the Database type. */

/**
 * `schedules` (one row per job of SCHEDULES_FILE, its next due time moved forward by the scheduler that
 * claims it), `job_runs` (every run, unique on job and due time, so a due time runs once whatever
 * number of schedulers run), `polls` (what each `poll` run got back) and `digests` (one per chat and
 * digest run, so a chat gets one summary per due time).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('schedules')
    .addColumn('name', 'varchar(100)', (c) => c.primaryKey())
    .addColumn('kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('schedule', 'varchar(200)', (c) => c.notNull())
    .addColumn('timezone', 'varchar(64)', (c) => c.notNull())
    .addColumn('misfire', 'varchar(8)', (c) => c.notNull())
    .addColumn('next_due_at', sql`datetime(3)`)
    .addColumn('active', sql`tinyint`, (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('updated_at', sql`datetime(3)`, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('job_runs')
    .addColumn('id', 'char(36)', (c) => c.primaryKey())
    .addColumn('job', 'varchar(100)', (c) => c.notNull())
    .addColumn('kind', 'varchar(16)', (c) => c.notNull())
    .addColumn('due_at', sql`datetime(3)`)
    .addColumn('trigger', 'varchar(16)', (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('detail', 'text')
    .addColumn('queued_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('started_at', sql`datetime(3)`)
    .addColumn('finished_at', sql`datetime(3)`)
    .addColumn('heartbeat_at', sql`datetime(3)`)
    .addUniqueConstraint('job_runs_job_due', ['job', 'due_at'])
    .execute();
  await db.schema.createIndex('job_runs_job_queued').on('job_runs').columns(['job', 'queued_at']).execute();

  await db.schema
    .createTable('polls')
    .addColumn('run_id', 'char(36)', (c) => c.primaryKey())
    .addColumn('job', 'varchar(100)', (c) => c.notNull())
    .addColumn('polled_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('content_type', 'varchar(255)')
    .addColumn('body_sha256', 'char(64)')
    .addColumn('body_size', 'integer')
    .addColumn('changed', sql`tinyint`, (c) => c.notNull())
    .addColumn('error', 'text')
    .execute();
  await db.schema.createIndex('polls_job_polled').on('polls').columns(['job', 'polled_at']).execute();

  await db.schema
    .createTable('digests')
    .addColumn('id', 'char(36)', (c) => c.primaryKey())
    .addColumn('job', 'varchar(100)', (c) => c.notNull())
    .addColumn('chat_id', 'varchar(32)', (c) => c.notNull())
    .addColumn('run_id', 'char(36)', (c) => c.notNull())
    .addColumn('since', sql`datetime(3)`)
    .addColumn('until', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('status', 'varchar(16)', (c) => c.notNull())
    .addColumn('telegram_message_id', 'bigint')
    .addColumn('last_error', 'text')
    .addColumn('created_at', sql`datetime(3)`, (c) => c.notNull())
    .addColumn('updated_at', sql`datetime(3)`, (c) => c.notNull())
    .addUniqueConstraint('digests_run_chat', ['run_id', 'chat_id'])
    .execute();
  await db.schema
    .createIndex('digests_job_chat')
    .on('digests')
    .columns(['job', 'chat_id', 'until'])
    .execute();
}

/** Drops the four tables. */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('digests').execute();
  await db.schema.dropTable('polls').execute();
  await db.schema.dropTable('job_runs').execute();
  await db.schema.dropTable('schedules').execute();
}
