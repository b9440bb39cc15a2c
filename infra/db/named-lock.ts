import { sql, type Kysely } from 'kysely';
import { perObject } from '../per-object.js';
import { TurnBatch } from '../turn-batch.js';

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
const placesOf = perObject((_db: AnyDb) => ({ held: 0, waiting: [] as Array<() => void> }));

async function takePlace(db: AnyDb): Promise<() => void> {
  const slot = placesOf(db);
  if (slot.held >= MAX_LOCK_HOLDERS) await new Promise<void>((r) => slot.waiting.push(r));
  else slot.held += 1;
  return () => {
    const next = slot.waiting.shift();
    if (next)
      next(); // the place passes straight to the next waiter
    else slot.held -= 1;
  };
}

/** Most locks a group takes in one statement (see {@link withNamedLock}). */
const MAX_GROUP = 16;

interface Asker {
  lock: string;
  waitSeconds: number;
  fn: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** Asks of this turn of the event loop, per database handle, not yet sent. */
const formingOf = perObject(
  (db: AnyDb) =>
    new TurnBatch<Asker>((all) => {
      for (let at = 0; at < all.length; at += MAX_GROUP) void holdGroup(db, all.slice(at, at + MAX_GROUP));
    }),
);

/**
 * Runs `fn` holding a MySQL named lock (`GET_LOCK`, on MySQL 8 and MariaDB) on one pinned connection,
 * so that work on one thing is done by one process at a time across the deployment. The server drops
 * the lock by itself when the holder's connection dies, so a crashed holder never blocks anyone.
 * Resolves to `LOCK_BUSY` when the lock was not free within `waitSeconds`. At most
 * {@link MAX_LOCK_HOLDERS} connections hold locks at once per process; `fn` must not take another
 * named lock.
 *
 * Locks asked for in the same turn of the event loop (the files of one burst of deliveries) are taken
 * together: one connection, one `SELECT GET_LOCK(a, 0), GET_LOCK(b, 0) ...` without waiting, their
 * `fn`s run side by side, and one statement releases them all when the last is done, instead of two
 * statements and a connection each. An ask the group cannot serve at once (another session holds the
 * lock, or another ask of the group wants the same name) is asked for alone right away, waiting as
 * above, so a wait of 0 still answers `LOCK_BUSY` while someone else holds the lock.
 */
export function withNamedLock<T>(
  db: AnyDb,
  name: string,
  waitSeconds: number,
  fn: () => Promise<T>,
): Promise<T | typeof LOCK_BUSY> {
  // MySQL caps lock names at 64 characters.
  const lock = name.slice(0, 64);
  const turn = formingOf(db);
  return new Promise((resolve, reject) =>
    turn.add({ lock, waitSeconds, fn, resolve: resolve as (v: unknown) => void, reject }),
  );
}

/**
 * Takes the group's locks in one statement, runs the holders' work, releases in one statement. An ask
 * the group cannot serve at once (its name asked twice, or held elsewhere) is asked alone right away,
 * on a connection of its own, as it would have been without the group: with a wait of 0 it is told
 * `LOCK_BUSY` while the lock is held, with a longer one it gets the lock when it is released.
 */
async function holdGroup(db: AnyDb, group: Asker[]): Promise<void> {
  // The first ask of each name goes in the group; a second one of the same name is asked alone.
  const first: Asker[] = [];
  const names = new Set<string>();
  for (const a of group) {
    if (names.has(a.lock)) {
      void holdAlone(db, a);
    } else {
      first.push(a);
      names.add(a.lock);
    }
  }
  if (first.length === 1) return holdAlone(db, first[0]!);
  const answered = new Set<Asker>();
  const leave = await takePlace(db);
  try {
    await db.connection().execute(async (conn) => {
      const got = await sql<Record<string, number | null>>`SELECT ${sql.join(
        first.map((a, i) => sql`GET_LOCK(${a.lock}, 0) AS ${sql.ref(`l${i}`)}`),
      )}`.execute(conn);
      const row = got.rows[0] ?? {};
      const held: Asker[] = [];
      first.forEach((a, i) => {
        if (Number(row[`l${i}`]) === 1) {
          held.push(a);
        } else {
          answered.add(a);
          void holdAlone(db, a);
        }
      });
      try {
        await Promise.all(
          held.map((a) =>
            Promise.resolve()
              .then(a.fn)
              .then(a.resolve, a.reject)
              .finally(() => answered.add(a)),
          ),
        );
      } finally {
        if (held.length > 0)
          await sql`SELECT ${sql.join(
            held.map((a, i) => sql`RELEASE_LOCK(${a.lock}) AS ${sql.ref(`r${i}`)}`),
          )}`.execute(conn);
      }
    });
  } catch (err) {
    // The statements failed (a lost connection): whoever was not answered yet gets the error.
    for (const a of first) if (!answered.has(a)) a.reject(err);
  } finally {
    leave();
  }
}

/** One lock on a connection of its own, waiting up to its `waitSeconds` for it. */
async function holdAlone(db: AnyDb, a: Asker): Promise<void> {
  const leave = await takePlace(db);
  try {
    a.resolve(
      await db.connection().execute(async (conn) => {
        const got = await sql<{
          ok: number | null;
        }>`SELECT GET_LOCK(${a.lock}, ${a.waitSeconds}) AS ok`.execute(conn);
        if (Number(got.rows[0]?.ok) !== 1) return LOCK_BUSY;
        try {
          return await a.fn();
        } finally {
          // Named: mysql2 compiles a row parser per distinct set of column names, and an unnamed
          // column would be called after the lock's name, a new one each time.
          await sql`SELECT RELEASE_LOCK(${a.lock}) AS released`.execute(conn);
        }
      }),
    );
  } catch (err) {
    a.reject(err);
  } finally {
    leave();
  }
}
