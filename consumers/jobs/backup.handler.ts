import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { ListedFile, UploadRequest, UploadResult } from '../../infra/drive/drive-client.js';
import { createBackup, isBackupName, pruneBackups, type BackupResult } from '../../infra/backup/backup.js';
import type { ToolTls } from '../../infra/backup/mysql-tools.js';
import { describeError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';
import type { JobRunner } from './jobs.handler.js';

/** App property every backup Postroom uploads carries (`1`): what marks a file of the folder as one of ours. */
export const BACKUP_PROPERTY = 'postroomBackup';
/** App property holding the id of the run that made the backup (on the run's own archive). */
export const BACKUP_RUN_PROPERTY = 'postroomRun';

/** What the backup job needs of Drive (a `DriveFileStore`). */
export interface BackupFolderStore {
  reserveFileId(): Promise<string>;
  upload(request: UploadRequest): Promise<UploadResult>;
  listByAppProperty(folderId: string, key: string, value: string): Promise<ListedFile[]>;
  deleteFile(fileId: string): Promise<void>;
}

/** What the backup runner needs. */
export interface BackupDeps {
  /** `MYSQL_URL`. */
  mysqlUrl: string;
  /** `BACKUP_DIR`. */
  dir: string;
  /** `MYSQL_TLS` and `MYSQL_TLS_CA`. */
  tls?: ToolTls;
  /** `BACKUP_KEEP`: backups kept in BACKUP_DIR, and in the Drive folder; older ones are deleted after a new one. */
  keep: number;
  /** With Drive configured and `DRIVE_BACKUP_FOLDER_ID`: where the newest backups are kept too. */
  drive?: { store: BackupFolderStore; folderId: string } | null;
  /** Clock for the archive's name (tests). */
  now?: () => Date;
}

/** SHA-256 of a file, streamed. */
async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/** What a sync of the Drive folder did (so far, when it failed half way). */
interface DriveSync {
  /** Drive file ids of the archives uploaded, by name. */
  uploaded: Map<string, string>;
  /** Copies deleted from Drive. */
  deleted: number;
}

/**
 * Makes the Drive folder hold the newest `keep` backups: of the backups in BACKUP_DIR and those
 * already in the folder (another replica's, with a BACKUP_DIR of its own), the `keep` newest by name
 * (names sort by time) stay; those of them only in BACKUP_DIR are uploaded, and Postroom's other
 * copies in the folder are deleted, a second copy of one name too. Uploads come before deletions, so
 * the folder never holds fewer backups than before. Only files with the {@link BACKUP_PROPERTY} app
 * property and a backup's name are ever deleted: anything else in the folder is left alone.
 *
 * Every step can be repeated: a run cut off anywhere (after an upload, before the deletions) leaves a
 * folder the next run brings to the same end, without uploading an archive already there (found by
 * name) and without losing the newest one (it is uploaded before anything is deleted). An upload
 * whose answer was lost is retried under its reserved id and found already there.
 */
async function syncDriveFolder(
  drive: NonNullable<BackupDeps['drive']>,
  dir: string,
  keep: number,
  copies: readonly ListedFile[],
  made: { name: string; runId: string } | null,
  log: Logger,
  done: DriveSync,
): Promise<void> {
  const local = new Set((await readdir(dir).catch(() => [] as string[])).filter(isBackupName));
  const byName = new Map<string, ListedFile[]>();
  for (const c of copies) if (isBackupName(c.name)) byName.set(c.name, [...(byName.get(c.name) ?? []), c]);
  const kept = new Set([...new Set([...local, ...byName.keys()])].sort().reverse().slice(0, keep));

  for (const name of [...kept].filter((n) => local.has(n) && !byName.has(n)).sort()) {
    const file = join(dir, name);
    const fileId = await drive.store.reserveFileId();
    const result = await drive.store.upload({
      fileId,
      folderId: drive.folderId,
      name,
      mimeType: 'application/gzip',
      size: (await stat(file)).size,
      sha256: await sha256File(file),
      appProperties: {
        [BACKUP_PROPERTY]: '1',
        ...(made?.name === name ? { [BACKUP_RUN_PROPERTY]: made.runId } : {}),
      },
      open: () => createReadStream(file),
    });
    done.uploaded.set(name, result.fileId);
    log.info({ name, fileId: result.fileId }, 'backup: uploaded to Drive');
  }

  const byAge = (a: ListedFile, b: ListedFile) => (a.createdTime ?? '').localeCompare(b.createdTime ?? '');
  for (const [name, files] of byName) {
    const extra = kept.has(name) ? [...files].sort(byAge).slice(1) : files;
    for (const f of extra) {
      await drive.store.deleteFile(f.fileId);
      done.deleted++;
      log.info({ name, fileId: f.fileId }, 'backup: older copy deleted from Drive');
    }
  }
}

/**
 * `backup`: what `npm run backup` does (BACKUP_DIR/postroom-<UTC time>.tar.gz, a consistent dump and
 * its manifest); with Drive, makes DRIVE_BACKUP_FOLDER_ID hold the newest BACKUP_KEEP backups (see
 * `syncDriveFolder`); then keeps the newest BACKUP_KEEP backups of BACKUP_DIR. Drive failing costs no
 * backup: the archive is written and BACKUP_DIR pruned all the same, and the run is recorded failed
 * with Drive's error (the next run uploads what the folder still lacks).
 *
 * A run of the same id tried again (after a crash between the upload and the deletions) finds its own
 * archive in the folder by its {@link BACKUP_RUN_PROPERTY}: it makes no second backup, and finishes
 * the deletions.
 */
export function createBackupRunner(deps: BackupDeps): JobRunner {
  return async ({ runId, log }) => {
    const drive = deps.drive ?? null;
    const list = () => drive!.store.listByAppProperty(drive!.folderId, BACKUP_PROPERTY, '1');
    // Drive being down must not cost the local backup: the listing is tried again after it.
    const copies = drive
      ? await list().catch((err: unknown) => {
          log.warn({ err }, 'backup: the Drive folder could not be listed; backing up first');
          return null;
        })
      : null;
    const earlier = copies?.find((c) => c.appProperties[BACKUP_RUN_PROPERTY] === runId);
    let backup: BackupResult | null = null;
    if (!earlier)
      backup = await createBackup({
        mysqlUrl: deps.mysqlUrl,
        dir: deps.dir,
        tls: deps.tls,
        log,
        now: deps.now,
      });
    const name = backup ? basename(backup.file) : earlier!.name;

    const parts: string[] = [];
    if (backup) {
      const rows = Object.values(backup.manifest.rowCounts).reduce((a, b) => a + b, 0);
      parts.push(
        `${name}: ${backup.size} bytes, ${rows} rows, dump sha256 ${backup.manifest.dump.sha256.slice(0, 12)}…`,
      );
    } else
      parts.push(`${name}: made by an earlier attempt of this run, already on Drive as ${earlier!.fileId}`);
    let driveFailure: string | null = null;
    if (drive) {
      const sync: DriveSync = { uploaded: new Map(), deleted: 0 };
      try {
        const made = backup ? { name, runId } : null;
        await syncDriveFolder(drive, resolve(deps.dir), deps.keep, copies ?? (await list()), made, log, sync);
      } catch (err) {
        log.warn({ err }, 'backup: written to BACKUP_DIR, but Drive failed');
        driveFailure = describeError(err);
      }
      const own = sync.uploaded.get(name);
      if (own) parts.push(`uploaded to Drive as ${own}`);
      const others = sync.uploaded.size - (own ? 1 : 0);
      if (others > 0) parts.push(`uploaded ${others} older backup${others === 1 ? '' : 's'} Drive lacked`);
      if (sync.deleted > 0) parts.push(`deleted ${sync.deleted} older on Drive`);
    }
    const pruned = await pruneBackups(deps.dir, deps.keep);
    if (pruned.length > 0) parts.push(`deleted ${pruned.length} older locally`);
    // The archive is in BACKUP_DIR either way; the run fails when Drive did not get its copy, and the
    // next run uploads what the folder still lacks.
    if (driveFailure)
      return { detail: `${parts.join('; ')}; Drive failed: ${driveFailure}`, outcome: 'failed' };
    return { detail: parts.join('; ') };
  };
}
