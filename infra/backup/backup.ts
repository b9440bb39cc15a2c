import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { PermanentError } from '../errors.js';
import type { Logger } from '../logger.js';
import { findTool, stderrTail, toolTarget, withConnection, type ToolTls } from './mysql-tools.js';

/** Format of `manifest.json`; a restore refuses formats it does not know. */
export const MANIFEST_FORMAT = 1;
/** Name of the dump inside the archive. */
export const DUMP_NAME = 'dump.sql';
/** Table Kysely records applied migrations in. */
export const MIGRATIONS_TABLE = 'postroom_migrations';

/** What `manifest.json` says about a backup. */
export interface BackupManifest {
  format: number;
  /** Postroom's version (package.json) that wrote it. */
  version: string;
  /** When the dump started (UTC ISO). */
  createdAt: string;
  /** The database dumped. */
  database: string;
  /** Name of the last migration applied to it: a restore refuses a schema newer than its own. */
  lastMigration: string | null;
  /** Rows of each table in the dump (counted from the dump itself, so they match it exactly). */
  rowCounts: Record<string, number>;
  dump: { file: string; size: number; sha256: string };
  /** The program that made the dump and its version. */
  tool: string;
}

/** Options of `createBackup`. */
export interface BackupOptions {
  /** `MYSQL_URL`. */
  mysqlUrl: string;
  /** `BACKUP_DIR`: created when missing. */
  dir: string;
  /** `MYSQL_TLS` and `MYSQL_TLS_CA`. */
  tls?: ToolTls;
  log?: Logger;
  /** Clock for the archive's name and the manifest (tests). */
  now?: () => Date;
}

/** A backup written. */
export interface BackupResult {
  /** Absolute path of the `.tar.gz`. */
  file: string;
  size: number;
  manifest: BackupManifest;
}

/** Postroom's version, from the package.json above this file (sources and `dist/` alike). */
export function postroomVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'postroom' && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

/** `postroom-20261203T081500Z.tar.gz`: sorts by time, no colons (safe on every file system). */
export function backupFileName(at: Date): string {
  return `postroom-${at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z')}.tar.gz`;
}

/** True for names `backupFileName` makes. */
export const isBackupName = (name: string) => /^postroom-\d{8}T\d{6}Z\.tar\.gz$/.test(name);

/**
 * Counts the rows of each table in a mysqldump/mariadb-dump file. An `INSERT INTO \`t\` VALUES`
 * statement holds one `(...)` tuple per row, on its own line with `--quick`, up to the `;` that ends
 * it; strings are skipped with their backslash escapes (binary columns are hex with `--hex-blob`, and
 * the dump escapes line breaks, so no unquoted parenthesis or semicolon appears inside a value).
 */
export async function countDumpRows(file: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let table: string | null = null;
  for await (const line of lines) {
    let from = 0;
    if (table === null) {
      const m = /^INSERT INTO `((?:[^`]|``)+)` (?:\([^)]*\) )?VALUES\b/.exec(line);
      if (!m) continue;
      table = m[1]!.replace(/``/g, '`');
      from = m[0].length;
    }
    let n = 0;
    const special = /['(;]/g;
    special.lastIndex = from;
    for (;;) {
      const hit = special.exec(line);
      if (!hit) break;
      if (hit[0] === '(') {
        n++;
        continue;
      }
      if (hit[0] === ';') {
        counts[table] = (counts[table] ?? 0) + n;
        n = 0;
        table = null;
        break;
      }
      // Inside a string: find its closing quote, skipping backslash escapes and doubled quotes.
      let i = special.lastIndex;
      for (;;) {
        const q = line.indexOf("'", i);
        const b = line.indexOf('\\', i);
        if (q === -1)
          throw new PermanentError(
            'BACKUP.DUMP_UNREADABLE',
            `An unterminated string in the rows of ${table}`,
          );
        if (b !== -1 && b < q) {
          i = b + 2;
          continue;
        }
        if (line[q + 1] === "'") {
          i = q + 2;
          continue;
        }
        special.lastIndex = q + 1;
        break;
      }
    }
    if (table !== null) counts[table] = (counts[table] ?? 0) + n;
  }
  return counts;
}

/** Tables of the database and the last migration applied. */
async function schemaFacts(
  url: string,
  tls?: ToolTls,
): Promise<{ tables: string[]; lastMigration: string | null }> {
  return withConnection(url, tls, async (query) => {
    const tables = await query(
      'SELECT table_name AS name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = ?',
      ['BASE TABLE'],
    );
    const names = tables.map((t) => String(t['name'])).sort();
    let lastMigration: string | null = null;
    if (names.includes(MIGRATIONS_TABLE)) {
      const rows = await query(`SELECT name FROM \`${MIGRATIONS_TABLE}\` ORDER BY name DESC LIMIT 1`);
      lastMigration = rows[0] ? String(rows[0]['name']) : null;
    }
    return { tables: names, lastMigration };
  });
}

/** Runs a tool writing its standard output to `out`, hashing it on the way. */
async function dumpTo(
  tool: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  out: string,
): Promise<{ sha256: string; size: number }> {
  const child = spawn(tool, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = stderrTail(child);
  const exited = new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', res);
  });
  const hash = createHash('sha256');
  let size = 0;
  child.stdout.on('data', (d: Buffer) => {
    hash.update(d);
    size += d.length;
  });
  await pipeline(child.stdout, createWriteStream(out));
  const code = await exited;
  if (code !== 0) throw new PermanentError('BACKUP.DUMP_FAILED', `${tool} exited with ${code}: ${tail()}`);
  return { sha256: hash.digest('hex'), size };
}

/** Runs `tar` with arguments; rejects with its error output. */
export async function runTar(args: string[], code: string): Promise<void> {
  const child = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const tail = stderrTail(child);
  const exit = await new Promise<number | null>((res, rej) => {
    child.once('error', rej);
    child.once('close', res);
  });
  if (exit !== 0) throw new PermanentError(code, `tar ${args[0]} failed (${exit}): ${tail()}`);
}

/**
 * Writes `dir/postroom-<UTC time>.tar.gz`: a consistent dump of the database (`mariadb-dump
 * --single-transaction`: one snapshot of every InnoDB table while mail keeps arriving, without locking
 * writers; it holds the attachment bytes too) and `manifest.json` (version, last migration, row counts
 * of the dump, its SHA-256). The archive appears under its final name only when complete.
 */
export async function createBackup(opts: BackupOptions): Promise<BackupResult> {
  const now = opts.now ?? (() => new Date());
  const createdAt = now();
  const target = toolTarget(opts.mysqlUrl, opts.tls);
  const tool = await findTool(['mariadb-dump', 'mysqldump']);
  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  // Work files next to the archives, not in /tmp: the dump holds every attachment, and a small /tmp
  // (a container's tmpfs) would not take it. The rename at the end stays on one file system.
  const work = await mkdtemp(join(dir, '.work-'));
  try {
    const facts = await schemaFacts(opts.mysqlUrl, opts.tls);
    const dumpFile = join(work, DUMP_NAME);
    const args = [
      ...target.args,
      '--single-transaction',
      '--quick',
      '--hex-blob',
      '--routines',
      '--triggers',
      '--default-character-set=utf8mb4',
      '--no-tablespaces',
      target.database,
    ];
    opts.log?.info(
      { database: target.database, tables: facts.tables.length },
      'backup: dumping the database',
    );
    const dump = await dumpTo(tool, args, target.env, dumpFile);
    const rowCounts = Object.fromEntries(facts.tables.map((t) => [t, 0]));
    Object.assign(rowCounts, await countDumpRows(dumpFile));
    const version = await new Promise<string>((res) => {
      const p = spawn(tool, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      p.stdout.on('data', (d: Buffer) => (out += d.toString()));
      p.once('close', () => res(out.trim()));
      p.once('error', () => res(tool));
    });
    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT,
      version: postroomVersion(),
      createdAt: createdAt.toISOString(),
      database: target.database,
      lastMigration: facts.lastMigration,
      rowCounts,
      dump: { file: DUMP_NAME, size: dump.size, sha256: dump.sha256 },
      tool: version,
    };
    await writeFile(join(work, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const file = join(dir, backupFileName(createdAt));
    const partial = `${file}.partial`;
    await runTar(['-czf', partial, '-C', work, 'manifest.json', DUMP_NAME], 'BACKUP.ARCHIVE_FAILED');
    await rename(partial, file);
    const size = (await stat(file)).size;
    opts.log?.info(
      { file, size, rows: Object.values(rowCounts).reduce((a, b) => a + b, 0) },
      'backup written',
    );
    return { file, size, manifest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Deletes all but the newest `keep` backups of `dir` (by name, which sorts by time); returns those deleted. */
export async function pruneBackups(dir: string, keep: number): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter(isBackupName).sort();
  const old = names.slice(0, Math.max(0, names.length - keep));
  for (const name of old) await unlink(join(dir, name)).catch(() => undefined);
  return old;
}
