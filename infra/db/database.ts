import { Kysely, Migrator, MysqlDialect, type MigrationResultSet } from 'kysely';
import { createConnection, createPool, type Pool } from 'mysql2';
import type { Logger } from '../logger.js';
import { migrations } from './migrations/index.js';
import type { Database } from './tables/index.js';

export type { Database } from './tables/index.js';

/** The Kysely handle every repository takes. */
export type Db = Kysely<Database>;

/** True for MySQL's duplicate-key error (ER_DUP_ENTRY, 1062), the same on MySQL 8 and MariaDB. */
export function isDuplicateKey(err: unknown): boolean {
  return (err as { errno?: unknown } | null)?.errno === 1062;
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

/** Creates the database named in the URL when it does not exist yet (utf8mb4, on MySQL 8 and MariaDB). */
export async function ensureDatabase(url: string): Promise<void> {
  const { database, serverUrl } = parseMysqlUrl(url);
  const conn = createConnection({ uri: serverUrl }).promise();
  try {
    await conn.query(
      `CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** Options of the connection pool. */
export interface DatabaseOptions {
  /** Pool size (default 10). */
  connectionLimit?: number;
}

/** A Kysely instance and its pool (the pool is exposed for health checks). */
export interface DatabaseHandle {
  db: Db;
  pool: Pool;
}

/** Opens a pool on the URL. Dates are read and written as UTC. */
export function openDatabase(url: string, options: DatabaseOptions = {}): DatabaseHandle {
  const pool = createPool({
    uri: url,
    connectionLimit: options.connectionLimit ?? 10,
    timezone: 'Z',
    dateStrings: false,
    supportBigNumbers: true,
    bigNumberStrings: false,
    enableKeepAlive: true,
    connectTimeout: 5_000,
  });
  // A pool error (server gone) must never crash the process: queries fail and callers retry.
  pool.on('connection', (conn) => {
    conn.on('error', () => undefined);
  });
  const db = new Kysely<Database>({ dialect: new MysqlDialect({ pool }) });
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
  await ensureDatabase(url);
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
