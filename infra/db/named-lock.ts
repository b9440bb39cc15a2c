import { sql, type Kysely } from 'kysely';

/** Returned by `withNamedLock` when the lock was not free within the wait. */
export const LOCK_BUSY: unique symbol = Symbol('lock busy');

/**
 * Most named locks one process holds at once, per database handle. A holder pins a pooled connection
 * for as long as it holds the lock, and its work (a Drive consumer reserving a file id, a notifier
 * recording a message) usually needs a second one from the same pool of 10. Unbounded, ten holders at
 * once (the Drive consumer's prefetch raised to 12, say, or every role of one process busy with its
 * locks) would pin the whole pool and each wait forever for a connection for its work. Callers past
 * the limit wait here, holding no connection.
 */
export const MAX_LOCK_HOLDERS = 4;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any Kysely database will do
type AnyDb = Kysely<any>;

/** Waiters for a holder's place, per database handle. */
const places = new WeakMap<AnyDb, { held: number; waiting: Array<() => void> }>();

async function takePlace(db: AnyDb): Promise<() => void> {
  let p = places.get(db);
  if (!p) places.set(db, (p = { held: 0, waiting: [] }));
  const slot = p;
  if (slot.held >= MAX_LOCK_HOLDERS) await new Promise<void>((r) => slot.waiting.push(r));
  else slot.held += 1;
  return () => {
    const next = slot.waiting.shift();
    if (next)
      next(); // the place passes straight to the next waiter
    else slot.held -= 1;
  };
}

/**
 * Runs `fn` holding a MySQL named lock (`GET_LOCK`, on MySQL 8 and MariaDB) on one pinned connection,
 * so that work on one thing is done by one process at a time across the deployment. The server drops
 * the lock by itself when the holder's connection dies, so a crashed holder never blocks anyone.
 * Resolves to `LOCK_BUSY` when the lock was not free within `waitSeconds`. At most
 * {@link MAX_LOCK_HOLDERS} run at once per process; `fn` must not take another named lock.
 */
export async function withNamedLock<T>(
  db: AnyDb,
  name: string,
  waitSeconds: number,
  fn: () => Promise<T>,
): Promise<T | typeof LOCK_BUSY> {
  // MySQL caps lock names at 64 characters.
  const lock = name.slice(0, 64);
  const leave = await takePlace(db);
  try {
    return await db.connection().execute(async (conn) => {
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
  } finally {
    leave();
  }
}
