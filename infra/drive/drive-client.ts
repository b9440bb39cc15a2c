import type { Config } from '../config.js';
import type { Db } from '../db/database.js';
import type { Logger } from '../logger.js';
import { createDriveAuth } from './drive-auth.js';
import type { RetryPolicy } from './drive-errors.js';
import { DriveFileStore } from './drive-file-store.js';
import type { FileStore } from './file-store.js';
import { LocalFileStore } from './local-file-store.js';

export type { FileStore, StoredFile, UploadRequest, UploadResult } from './file-store.js';
export {
  DriveFileStore,
  GOOGLE_API_ROOT,
  type DriveFileStoreOptions,
  type ListedFile,
} from './drive-file-store.js';
export { LocalFileStore, type LocalFileStoreOptions } from './local-file-store.js';
export { createDriveAuth, guardDriveRequests, type DriveAuthClient } from './drive-auth.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './drive-errors.js';

/** What `createFileStore` needs besides the configuration. */
export interface FileStoreDeps {
  config: Pick<
    Config,
    | 'driveMode'
    | 'GOOGLE_APPLICATION_CREDENTIALS'
    | 'DRIVE_CLIENT_ID'
    | 'DRIVE_CLIENT_SECRET'
    | 'DRIVE_REFRESH_TOKEN'
    | 'DRIVE_ACCESS_TOKEN'
    | 'DRIVE_API_URL'
    | 'DRIVE_ROOT_FOLDER_ID'
    | 'STORAGE_DIR'
  >;
  /** Database with `drive_folders` (used by Drive only). */
  db: Db;
  log?: Logger;
  /** Sends OAuth token requests here instead of Google's endpoint (tests, token proxies). */
  tokenUrl?: string;
  /** In-call retry budget (tests shorten it). */
  retry?: Partial<RetryPolicy>;
}

/**
 * The file store the configuration asks for: Google Drive when any Google credentials are set
 * (`driveMode` other than `local`), else the local directory `STORAGE_DIR`. Makes no request.
 */
export async function createFileStore(deps: FileStoreDeps): Promise<FileStore> {
  const { config } = deps;
  if (config.driveMode === 'local') return new LocalFileStore({ dir: config.STORAGE_DIR });
  return createDriveFileStore(deps);
}

/**
 * The Google Drive store of the configured credentials, for what only Drive does (the backup job's
 * copies in `DRIVE_BACKUP_FOLDER_ID`). Makes no request; throws when no Google credentials are set.
 */
export async function createDriveFileStore(deps: FileStoreDeps): Promise<DriveFileStore> {
  const { config } = deps;
  return new DriveFileStore({
    auth: await createDriveAuth(config),
    db: deps.db,
    rootUrl: config.DRIVE_API_URL,
    rootFolderId: config.DRIVE_ROOT_FOLDER_ID,
    tokenUrl: deps.tokenUrl,
    retry: deps.retry,
    log: deps.log?.child({ module: 'drive' }),
  });
}

/**
 * `createFileStore` made on first use and kept: for readers of filed copies (download, Telegram),
 * which may never need one. A failed creation is tried again on the next use.
 */
export function lazyFileStore(deps: FileStoreDeps): () => Promise<FileStore> {
  let store: Promise<FileStore> | null = null;
  return () => {
    store ??= createFileStore(deps).catch((err: unknown) => {
      store = null;
      throw err;
    });
    return store;
  };
}
