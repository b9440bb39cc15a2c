import { basename } from 'node:path';
import { createBackup, pruneBackups } from '../../infra/backup/backup.js';
import type { ToolTls } from '../../infra/backup/mysql-tools.js';
import type { JobRunner } from './jobs.handler.js';

/** What the backup runner needs. */
export interface BackupDeps {
  /** `MYSQL_URL`. */
  mysqlUrl: string;
  /** `BACKUP_DIR`. */
  dir: string;
  /** `MYSQL_TLS` and `MYSQL_TLS_CA`. */
  tls?: ToolTls;
  /** `BACKUP_KEEP`: backups kept in BACKUP_DIR; older ones are deleted after a successful backup. */
  keep: number;
}

/**
 * `backup`: what `npm run backup` does (BACKUP_DIR/postroom-<UTC time>.tar.gz, a consistent dump and
 * its manifest), then keeps the newest BACKUP_KEEP backups of BACKUP_DIR.
 */
export function createBackupRunner(deps: BackupDeps): JobRunner {
  return async ({ log }) => {
    const backup = await createBackup({ mysqlUrl: deps.mysqlUrl, dir: deps.dir, tls: deps.tls, log });
    const pruned = await pruneBackups(deps.dir, deps.keep);
    const rows = Object.values(backup.manifest.rowCounts).reduce((a, b) => a + b, 0);
    return {
      detail: `${basename(backup.file)}: ${backup.size} bytes, ${rows} rows, dump sha256 ${backup.manifest.dump.sha256.slice(0, 12)}…${pruned.length ? `; deleted ${pruned.length} older` : ''}`,
    };
  };
}
