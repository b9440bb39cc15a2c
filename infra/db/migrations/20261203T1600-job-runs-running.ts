/* eslint-disable @typescript-eslint/no-explicit-any -- migrations are frozen in time: they must not
   follow later changes of the Database type. */
import type { Kysely } from 'kysely';

/**
 * An index on `job_runs (status, heartbeat_at)`: every scheduler looks each second for runs still
 * `running` whose heartbeat stopped (their process died), and `job_runs` keeps every run ever made.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex('job_runs_status_heartbeat')
    .on('job_runs')
    .columns(['status', 'heartbeat_at'])
    .execute();
}

/** Drops the index. */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('job_runs_status_heartbeat').on('job_runs').execute();
}
