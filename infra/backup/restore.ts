import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Kysely } from 'kysely';
import { ensureDatabase, migrateToLatest, openDatabase } from '../db/database.js';
import { migrations } from '../db/migrations/index.js';
import { PermanentError } from '../errors.js';
import type { Logger } from '../logger.js';
import { DUMP_NAME, MANIFEST_FORMAT, runTar, type BackupManifest } from './backup.js';
import { findTool, mysqlTlsOf, stderrTail, toolTarget, withConnection, type ToolTls } from './mysql-tools.js';

/** Options of `restoreBackup`. */
export interface RestoreOptions {
  /** The `.tar.gz` that `createBackup` wrote. */
  file: string;
  /** Database to restore into (`MYSQL_URL`): created when missing. */
  mysqlUrl: string;
  /** Restore into a database that already has tables (they are dropped first). */
  force?: boolean;
  /** `MYSQL_TLS` and `MYSQL_TLS_CA`. */
  tls?: ToolTls;
  log?: Logger;
}

/** A restore done. */
export interface RestoreResult {
  manifest: BackupManifest;
  /** Migrations applied after the restore (a backup of an older schema is brought up to date). */
  migrated: string[];
}

const damaged = (why: string, cause?: unknown) =>
  new PermanentError('BACKUP.DAMAGED', `The backup cannot be used: ${why}`, cause ? { cause } : undefined);

/** Reads and checks `manifest.json`. */
function parseManifest(text: string): BackupManifest {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch (err) {
    throw damaged('manifest.json is not valid JSON', err);
  }
  const o = m as Partial<BackupManifest> | null;
  if (!o || typeof o !== 'object') throw damaged('manifest.json is not an object');
  if (o.format !== MANIFEST_FORMAT)
    throw new PermanentError(
      'BACKUP.UNSUPPORTED',
      `manifest format ${String(o.format)} is not one this Postroom reads (${MANIFEST_FORMAT})`,
    );
  if (!o.dump || typeof o.dump.sha256 !== 'string' || typeof o.rowCounts !== 'object' || o.rowCounts === null)
    throw damaged('manifest.json lacks the dump checksum or the row counts');
  return o as BackupManifest;
}

/** SHA-256 of a file, streamed. */
async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** Tables of a database. */
function tablesOf(url: string, tls?: ToolTls): Promise<string[]> {
  return withConnection(url, tls, async (query) =>
    (
      await query('SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE()')
    ).map((r) => String(r['name'])),
  );
}

/** Drops every table of the database (for `--force`). */
function dropTables(url: string, tables: readonly string[], tls?: ToolTls): Promise<void> {
  return withConnection(url, tls, async (query) => {
    await query('SET FOREIGN_KEY_CHECKS = 0');
    for (const t of tables) await query(`DROP TABLE IF EXISTS \`${t.replace(/`/g, '``')}\``);
  });
}

/** Row counts of the given tables. */
function countRows(url: string, tables: readonly string[], tls?: ToolTls): Promise<Record<string, number>> {
  return withConnection(url, tls, async (query) => {
    const out: Record<string, number> = {};
    for (const t of tables)
      out[t] = Number((await query(`SELECT COUNT(*) AS n FROM \`${t.replace(/`/g, '``')}\``))[0]?.['n'] ?? 0);
    return out;
  });
}

/**
 * Restores a backup into the database of `mysqlUrl` (created when missing). Refuses, before touching
 * anything: a damaged archive (unreadable, manifest missing, dump not matching its SHA-256), a backup
 * made by a newer schema (its last migration unknown here), and a database that has tables unless
 * `force`. After loading the dump it applies the migrations the backup predates and checks every
 * table's row count against the manifest.
 */
export async function restoreBackup(opts: RestoreOptions): Promise<RestoreResult> {
  if (!existsSync(opts.file)) throw new PermanentError('BACKUP.NOT_FOUND', `No such file: ${opts.file}`);
  const work = await mkdtemp(join(tmpdir(), 'postroom-restore-'));
  try {
    try {
      await runTar(['-xzf', opts.file, '-C', work, 'manifest.json', DUMP_NAME], 'BACKUP.DAMAGED');
    } catch (err) {
      throw damaged(`the archive does not unpack (${(err as Error).message})`, err);
    }
    const manifest = parseManifest(await readFile(join(work, 'manifest.json'), 'utf8'));
    const dumpFile = join(work, DUMP_NAME);
    if ((await sha256File(dumpFile)) !== manifest.dump.sha256)
      throw damaged(`${DUMP_NAME} does not match the SHA-256 in manifest.json`);
    const known = Object.keys(migrations).sort();
    if (manifest.lastMigration !== null && !known.includes(manifest.lastMigration))
      throw new PermanentError(
        'BACKUP.NEWER_SCHEMA',
        `The backup was made by a newer schema (last migration ${manifest.lastMigration}, Postroom ${manifest.version}); this Postroom knows up to ${known.at(-1) ?? 'none'}: restore it with that version or newer`,
      );

    await ensureDatabase(opts.mysqlUrl, mysqlTlsOf(opts.tls));
    const existing = await tablesOf(opts.mysqlUrl, opts.tls);
    if (existing.length > 0) {
      if (!opts.force)
        throw new PermanentError(
          'BACKUP.TARGET_NOT_EMPTY',
          `Database ${toolTarget(opts.mysqlUrl).database} already has ${existing.length} tables; restore into an empty database, or pass --force to replace them`,
        );
      opts.log?.warn(
        { tables: existing.length },
        'restore: --force: dropping the tables of the target database',
      );
      await dropTables(opts.mysqlUrl, existing, opts.tls);
    }

    const target = toolTarget(opts.mysqlUrl, opts.tls);
    const tool = await findTool(['mariadb', 'mysql']);
    opts.log?.info({ database: target.database, createdAt: manifest.createdAt }, 'restore: loading the dump');
    const child = spawn(tool, [...target.args, '--default-character-set=utf8mb4', target.database], {
      env: target.env,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    const tail = stderrTail(child);
    const exited = new Promise<number | null>((res, rej) => {
      child.once('error', rej);
      child.once('close', res);
    });
    await pipeline(createReadStream(dumpFile), child.stdin).catch(() => undefined); // the exit code tells
    const code = await exited;
    if (code !== 0)
      throw new PermanentError('BACKUP.RESTORE_FAILED', `${tool} exited with ${code}: ${tail()}`);

    const counts = await countRows(opts.mysqlUrl, Object.keys(manifest.rowCounts), opts.tls);
    const wrong = Object.entries(manifest.rowCounts).filter(([t, n]) => counts[t] !== n);
    if (wrong.length > 0)
      throw new PermanentError(
        'BACKUP.RESTORE_INCOMPLETE',
        `Row counts differ from the manifest: ${wrong.map(([t, n]) => `${t} ${counts[t]} of ${n}`).join(', ')}`,
      );
    const handle = openDatabase(opts.mysqlUrl, { connectionLimit: 2, tls: mysqlTlsOf(opts.tls) });
    try {
      const result = await migrateToLatest(handle.db as unknown as Kysely<unknown>, opts.log);
      const migrated = (result.results ?? [])
        .filter((r) => r.status === 'Success')
        .map((r) => r.migrationName);
      opts.log?.info({ database: target.database, migrated }, 'restore done');
      return { manifest, migrated };
    } finally {
      await handle.db.destroy();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
