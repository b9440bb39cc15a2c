import { readFileSync } from 'node:fs';
import {
  CompiledQuery,
  Kysely,
  Migrator,
  MysqlDialect,
  type MigrationResultSet,
  type Transaction,
} from 'kysely';
import { createConnection, createPool, type Pool, type SslOptions } from 'mysql2';
import type { Logger } from '../logger.js';
import { refusedCertificateCode } from '../tls-errors.js';
import { instrumentPool, observeQuery } from './db-metrics.js';
import { migrations } from './migrations/index.js';
import type { Database } from './tables/index.js';

export type { Database } from './tables/index.js';

/** The Kysely handle every repository takes. */
export type Db = Kysely<Database>;

/** True for MySQL's duplicate-key error (ER_DUP_ENTRY, 1062), the same on MySQL 8 and MariaDB. */
export function isDuplicateKey(err: unknown): boolean {
  return (err as { errno?: unknown } | null)?.errno === 1062;
}

/** True for a deadlock (1213) or a lock wait timeout (1205): the work was rolled back and may simply be tried again. */
export function isLockConflict(err: unknown): boolean {
  const n = (err as { errno?: unknown } | null)?.errno;
  return n === 1213 || n === 1205;
}

/**
 * Runs `fn` in a transaction, and again (up to `attempts` times in all, after a short random pause)
 * when the server rolled it back as the victim of a deadlock or a lock wait timeout: InnoDB's
 * documented answer to a deadlock is to retry, and a caller that treats it as a failure (a poller
 * reconnecting with backoff) loses seconds to a conflict that a retry settles in milliseconds. `fn`
 * must write only through the transaction, so that running it again is safe.
 */
export async function transactionWithRetry<T>(
  db: Kysely<Database>,
  fn: (trx: Transaction<Database>) => Promise<T>,
  attempts = 5,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction().execute(fn);
    } catch (err) {
      if (attempt >= attempts || !isLockConflict(err)) throw err;
      await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 20));
    }
  }
}

/** Splits a `mysql://` URL into the server part and the database name. */
export function parseMysqlUrl(url: string): { database: string; serverUrl: string } {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_$]+$/.test(database))
    throw new Error(`MYSQL_URL must name a database (letters, digits, _)`);
  u.pathname = '/';
  return { database, serverUrl: u.toString() };
}

/** How the connection to MySQL is encrypted (`MYSQL_TLS`, `MYSQL_TLS_CA`). */
export interface MysqlTls {
  /** `required`: encrypted, any certificate; `verify`: encrypted, CA and host name checked. */
  mode: 'off' | 'required' | 'verify';
  /** PEM of the CA that signed the server's certificate (`verify`); the system CAs when absent. */
  ca?: string | Buffer;
}

/** The `MysqlTls` of a configuration: reads the CA file once, at start. */
export function mysqlTlsFromConfig(config: { MYSQL_TLS: string; MYSQL_TLS_CA?: string }): MysqlTls {
  const mode = config.MYSQL_TLS as MysqlTls['mode'];
  return config.MYSQL_TLS_CA ? { mode, ca: readFileSync(config.MYSQL_TLS_CA) } : { mode };
}

/**
 * mysql2's `ssl` option for a `MysqlTls`. `verify` checks the chain and the host name (Node's checks,
 * so a certificate for `IP:127.0.0.1` matches `127.0.0.1`); `required` encrypts without checking,
 * which stops eavesdropping but not a man in the middle.
 */
function sslOptions(tls: MysqlTls | undefined): SslOptions | undefined {
  if (!tls || tls.mode === 'off') return undefined;
  if (tls.mode === 'required') return { rejectUnauthorized: false };
  return tls.ca ? { ca: tls.ca, rejectUnauthorized: true } : { rejectUnauthorized: true };
}

/**
 * What an operator should do about a connection error that comes from TLS, or null for any other
 * error: a refused certificate (wrong or missing `MYSQL_TLS_CA`, a host name not in the certificate),
 * a server without TLS while it is asked for, or a refused login while TLS is off (MariaDB answers a
 * plain connection under `require_secure_transport` with "Access denied", not with its own error).
 */
export function mysqlTlsHint(err: unknown, mode: MysqlTls['mode']): string | null {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  const refused = refusedCertificateCode(err);
  if (refused || (code === 'HANDSHAKE_SSL_ERROR' && /certificate|altname/i.test(message)))
    return `MySQL's TLS certificate was refused (${refused ?? message}): set MYSQL_TLS_CA to the CA that signed it, and connect by a host name the certificate names`;
  if (code === 'HANDSHAKE_NO_SSL_SUPPORT')
    return 'MySQL offers no TLS but MYSQL_TLS asks for it: enable TLS on the server, or set MYSQL_TLS=off';
  if (/insecure transport/i.test(message) || (mode === 'off' && code === 'ER_ACCESS_DENIED_ERROR'))
    return `MySQL refused the login (${message}): check the user and password in MYSQL_URL; if the server requires TLS (require_secure_transport), set MYSQL_TLS=verify`;
  return null;
}

/** Creates the database named in the URL when it does not exist yet (utf8mb4, on MySQL 8 and MariaDB). */
export async function ensureDatabase(url: string, tls?: MysqlTls): Promise<void> {
  const { database, serverUrl } = parseMysqlUrl(url);
  const conn = createConnection({ uri: serverUrl, ssl: sslOptions(tls), connectTimeout: 5_000 }).promise();
  try {
    await conn.query(
      `CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
  } catch (err) {
    // end() on a connection whose handshake failed never resolves: drop it instead.
    conn.destroy();
    throw err;
  }
  await conn.end().catch(() => undefined);
}

/** Options of the connection pool. */
export interface DatabaseOptions {
  /** Pool size (default 10). */
  connectionLimit?: number;
  /** Encryption of every connection (default off). */
  tls?: MysqlTls;
}

/** A Kysely instance and its pool (the pool is exposed for health checks). */
export interface DatabaseHandle {
  db: Db;
  pool: Pool;
}

/**
 * Every connection runs its transactions at READ COMMITTED: each statement reads what is committed when
 * it runs. Under MySQL's default REPEATABLE READ the first plain read fixes a snapshot for the whole
 * transaction, and a consumer's batch of commits (see CommitBatcher) is one transaction: one message's
 * read would hide from a later message the rows another consumer committed while that message waited
 * for a row lock, so "is every attachment of this email final?", asked under the email's lock, could
 * see a stale row and no one would close the email. Set once per connection, not per transaction, so
 * it costs no statement per commit. Postroom's guards are unique keys and locking reads, which hold the
 * same under both levels; READ COMMITTED also takes no gap locks, so fewer deadlocks between batches.
 */
const READ_COMMITTED = 'SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED';

/** Opens a pool on the URL. Dates are read and written as UTC; transactions are READ COMMITTED (above). */
export function openDatabase(url: string, options: DatabaseOptions = {}): DatabaseHandle {
  const pool = createPool({
    uri: url,
    connectionLimit: options.connectionLimit ?? 20,
    timezone: 'Z',
    dateStrings: false,
    supportBigNumbers: true,
    bigNumberStrings: false,
    enableKeepAlive: true,
    connectTimeout: 5_000,
    ssl: sslOptions(options.tls),
  });
  // A pool error (server gone) must never crash the process: queries fail and callers retry.
  pool.on('connection', (conn) => {
    conn.on('error', () => undefined);
  });
  const db = new Kysely<Database>({
    dialect: new MysqlDialect({
      pool: instrumentPool(pool),
      onCreateConnection: (conn) =>
        conn.executeQuery(CompiledQuery.raw(READ_COMMITTED)).then(() => undefined),
    }),
    log: observeQuery,
  });
  return { db, pool };
}

/** Runs every pending migration; throws with the failing migration's name when one fails. */
export async function migrateToLatest(db: Kysely<unknown>, log?: Logger): Promise<MigrationResultSet> {
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName: 'postroom_migrations',
    migrationLockTableName: 'postroom_migrations_lock',
  });
  const result = await migrator.migrateToLatest();
  for (const r of result.results ?? []) {
    if (r.status === 'Success') log?.info({ migration: r.migrationName }, 'migration applied');
    else if (r.status === 'Error') log?.error({ migration: r.migrationName }, 'migration failed');
  }
  if (result.error)
    throw new Error(`Database migration failed: ${String((result.error as Error).message ?? result.error)}`, {
      cause: result.error,
    });
  return result;
}

/** Creates the database when missing, opens it and migrates it: what every process does at start. */
export async function connectDatabase(
  url: string,
  log?: Logger,
  options?: DatabaseOptions,
): Promise<DatabaseHandle> {
  await ensureDatabase(url, options?.tls);
  const handle = openDatabase(url, options);
  await migrateToLatest(handle.db as unknown as Kysely<unknown>, log);
  return handle;
}

/** True when the database answers a trivial query within `timeoutMs`. */
export async function pingDatabase(pool: Pool, timeoutMs = 2_000): Promise<boolean> {
  const p = pool.promise();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      p.query('SELECT 1'),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
