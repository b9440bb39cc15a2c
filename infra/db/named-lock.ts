import { sql, type Kysely } from 'kysely';

/** Returned by `withNamedLock` when the lock was not free within the wait. */
export const LOCK_BUSY: unique symbol = Symbol('lock busy');

/**
 * Runs `fn` holding a MySQL named lock (`GET_LOCK`, on MySQL 8 and MariaDB) on one pinned connection,
 * so that work on one thing is done by one process at a time across the deployment. The server drops
 * the lock by itself when the holder's connection dies, so a crashed holder never blocks anyone.
 * Resolves to `LOCK_BUSY` when the lock was not free within `waitSeconds`.
 */
export async function withNamedLock<T>(
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- any Kysely database will do
  db: Kysely<any>,
  name: string,
  waitSeconds: number,
  fn: () => Promise<T>,
): Promise<T | typeof LOCK_BUSY> {
  // MySQL caps lock names at 64 characters.
  const lock = name.slice(0, 64);
  return db.connection().execute(async (conn) => {
    const got = await sql<{ ok: number | null }>`SELECT GET_LOCK(${lock}, ${waitSeconds}) AS ok`.execute(
      conn,
    );
    if (Number(got.rows[0]?.ok) !== 1) return LOCK_BUSY;
    try {
      return await fn();
    } finally {
      await sql`SELECT RELEASE_LOCK(${lock})`.execute(conn);
    }
  });
}
