import { sql } from 'kysely';
import type { Db } from '../../infra/db/database.js';
import { RetryableError } from '../../infra/errors.js';

/**
 * Runs `fn` holding the MySQL named lock of one email's notifications (on a pinned connection), so
 * that two deliveries of `email.processed` for the same email, in this process or another, never
 * send to the same chat at once: the second one waits, then finds those notifications no longer
 * pending. The server drops the lock by itself when the holder's connection dies.
 */
export async function withEmailLock<T>(
  db: Db,
  emailId: string,
  waitSeconds: number,
  fn: () => Promise<T>,
): Promise<T> {
  const name = `postroom:notify:${emailId}`;
  return db.connection().execute(async (conn) => {
    const got = await sql<{ ok: number | null }>`SELECT GET_LOCK(${name}, ${waitSeconds}) AS ok`.execute(
      conn,
    );
    if (Number(got.rows[0]?.ok) !== 1)
      throw new RetryableError(
        'TELEGRAM.NOTIFY_BUSY',
        `Notifications of email ${emailId} are being sent by another consumer`,
      );
    try {
      return await fn();
    } finally {
      await sql`SELECT RELEASE_LOCK(${name})`.execute(conn);
    }
  });
}
