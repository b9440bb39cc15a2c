import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FileStore } from '../../infra/drive/drive-client.js';
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
  /** With Drive configured and `DRIVE_BACKUP_FOLDER_ID`: where each backup is uploaded too. */
  drive?: { store: FileStore; folderId: string } | null;
}

/** SHA-256 of a file, streamed. */
async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * `backup`: what `npm run backup` does (BACKUP_DIR/postroom-<UTC time>.tar.gz, a consistent dump and
 * its manifest), uploads it to DRIVE_BACKUP_FOLDER_ID when Drive is configured, then keeps the newest
 * BACKUP_KEEP backups of BACKUP_DIR (older copies on Drive are left alone: pruning there is not built).
 */
export function createBackupRunner(deps: BackupDeps): JobRunner {
  return async ({ log }) => {
    const backup = await createBackup({ mysqlUrl: deps.mysqlUrl, dir: deps.dir, tls: deps.tls, log });
    let uploaded = '';
    if (deps.drive) {
      // The upload is exactly-once like an attachment's: a reserved id, found again by a retried upload.
      const fileId = await deps.drive.store.reserveFileId();
      const result = await deps.drive.store.upload({
        fileId,
        folderId: deps.drive.folderId,
        name: basename(backup.file),
        mimeType: 'application/gzip',
        size: backup.size,
        sha256: await sha256File(backup.file),
        appProperties: { postroomBackup: '1' },
        open: () => createReadStream(backup.file),
      });
      uploaded = `; uploaded to Drive as ${result.fileId}`;
    }
    const pruned = await pruneBackups(deps.dir, deps.keep);
    const rows = Object.values(backup.manifest.rowCounts).reduce((a, b) => a + b, 0);
    return {
      detail: `${basename(backup.file)}: ${backup.size} bytes, ${rows} rows, dump sha256 ${backup.manifest.dump.sha256.slice(0, 12)}…${uploaded}${pruned.length ? `; deleted ${pruned.length} older` : ''}`,
    };
  };
}
