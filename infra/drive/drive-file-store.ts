import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { drive, type drive_v3 } from '@googleapis/drive';
import type { Db } from '../db/database.js';
import { PermanentError, PostroomError, RetryableError } from '../errors.js';
import type { Logger } from '../logger.js';
import { guardDriveRequests, type DriveAuthClient } from './drive-auth.js';
import { DEFAULT_RETRY_POLICY, withDriveRetry, type RetryPolicy } from './drive-errors.js';
import { ensureChildFolder, forgetFolderClaims, type FolderClaimDeps } from './drive-folders.js';
import { CHUNK_GRANULE, uploadResumable } from './drive-resumable.js';
import type { Readable } from 'node:stream';
import {
  FOLDER_GONE,
  type ByteRange,
  type FileStore,
  type StoredFile,
  type UploadRequest,
  type UploadResult,
} from './file-store.js';

/** Drive's own API root, where calls go when `DRIVE_API_URL` is not set. */
export const GOOGLE_API_ROOT = 'https://www.googleapis.com/';
const FOLDER_MIME = 'application/vnd.google-apps.folder';
/** What Postroom reads of a file: v3 answers only id, name and mimeType unless asked. */
const FILE_FIELDS = 'id,name,parents,size,sha256Checksum,appProperties,webViewLink';

/** A file found by `DriveFileStore.listByAppProperty`. */
export interface ListedFile {
  fileId: string;
  name: string;
  /** When Drive made it (RFC 3339), or null when Drive did not say. */
  createdTime: string | null;
  /** The app properties Postroom set on it. */
  appProperties: Record<string, string>;
}

/** Options of `DriveFileStore`. */
export interface DriveFileStoreOptions {
  /** Authenticated client from `createDriveAuth`. */
  auth: DriveAuthClient;
  /** Database holding `drive_folders`. */
  db: Db;
  /** Drive API root (`DRIVE_API_URL`, default Google's); every call goes there, uploads included. */
  rootUrl?: string;
  /** Folder all paths start from (`DRIVE_ROOT_FOLDER_ID`, default `root`; a shared drive's id works). */
  rootFolderId?: string;
  /** Sends OAuth token requests here instead of Google's endpoint (tests, token proxies). */
  tokenUrl?: string;
  /** In-call retry budget for rate limits, 5xx and network errors. */
  retry?: Partial<RetryPolicy>;
  /** Larger files use a resumable upload (default 5 MiB). */
  resumableThresholdBytes?: number;
  /** Bytes per resumable PUT, rounded down to 256 KiB (default 4 MiB: a chunk is held in memory). */
  chunkBytes?: number;
  /** Ids fetched per files.generateIds call (default 20). */
  idBatchSize?: number;
  /** A folder claim older than this (ms) may be taken over from a silent process (default 15 s). */
  folderClaimTimeoutMs?: number;
  /** Longest wait (ms) for another process to create a folder (default 60 s). */
  folderWaitMs?: number;
  log?: Logger;
}

/**
 * Files into Google Drive through `@googleapis/drive`. Every call passes `{ rootUrl }` per call as well
 * as globally: the global option alone sends media uploads to Google's host and drops a path prefix
 * from `rootUrl`. The client's own retries are off (`retry: false`); `withDriveRetry` retries instead,
 * the same way for every call. All calls say `supportsAllDrives` so shared drives work.
 */
export class DriveFileStore implements FileStore {
  readonly backend = 'drive';
  readonly rootFolderId: string;
  private readonly rootUrl: string;
  private readonly api: drive_v3.Drive;
  private readonly call: { rootUrl: string };
  private readonly policy: RetryPolicy;
  private readonly threshold: number;
  private readonly chunkBytes: number;
  private readonly folders: FolderClaimDeps;
  private readonly folderCache = new Map<string, Promise<string>>();
  private ids: string[] = [];
  private refill: Promise<void> | null = null;

  constructor(private readonly options: DriveFileStoreOptions) {
    this.rootUrl = new URL(options.rootUrl ?? GOOGLE_API_ROOT).href.replace(/\/*$/, '/');
    this.rootFolderId = options.rootFolderId ?? 'root';
    this.call = { rootUrl: this.rootUrl };
    this.api = drive({ version: 'v3', auth: options.auth, rootUrl: this.rootUrl, retry: false });
    guardDriveRequests(options.auth, { rootUrl: this.rootUrl, tokenUrl: options.tokenUrl });
    this.policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.threshold = options.resumableThresholdBytes ?? 5 * 1024 * 1024;
    this.chunkBytes =
      Math.max(1, Math.floor((options.chunkBytes ?? 4 * 1024 * 1024) / CHUNK_GRANULE)) * CHUNK_GRANULE;
    this.folders = {
      db: options.db,
      owner: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
      claimTimeoutMs: options.folderClaimTimeoutMs ?? 15_000,
      maxWaitMs: options.folderWaitMs ?? 60_000,
      reserveId: () => this.reserveFileId(),
      findExisting: (parentId, name) => this.findFolder(parentId, name),
      create: (folderId, parentId, name) => this.createFolder(folderId, parentId, name),
      log: options.log,
    };
  }

  /** Folder ids are cached per process; creation is serialized across processes by `drive_folders`. */
  async ensureFolder(path: readonly string[]): Promise<string> {
    let parent = this.rootFolderId;
    for (const name of path) {
      if (name === '' || name.length > 255)
        throw new PermanentError(
          'DRIVE.BAD_FOLDER_NAME',
          `Folder names must have 1 to 255 characters (got ${name.length})`,
        );
      const key = `${parent}\u0000${name}`;
      let pending = this.folderCache.get(key);
      if (!pending) {
        pending = ensureChildFolder(this.folders, parent, name);
        this.folderCache.set(key, pending);
        pending.catch(() => this.folderCache.delete(key));
      }
      parent = await pending;
    }
    return parent;
  }

  /** Ids come from files.generateIds in batches; a batch lost with the process costs nothing. */
  async reserveFileId(): Promise<string> {
    for (;;) {
      const id = this.ids.shift();
      if (id) return id;
      this.refill ??= this.fetchIds().finally(() => (this.refill = null));
      await this.refill;
    }
  }

  async findBySha256(folderId: string, sha256: string): Promise<StoredFile | null> {
    checkSha256(sha256);
    const res = await withDriveRetry('find by SHA-256', { folderId }, this.policy, () =>
      this.api.files.list(
        {
          q: `'${quote(folderId)}' in parents and appProperties has { key='sha256' and value='${sha256}' } and trashed = false`,
          fields: 'files(id,webViewLink,sha256Checksum)',
          orderBy: 'createdTime',
          pageSize: 10,
          spaces: 'drive',
          supportsAllDrives: true,
          includeItemsFromAllDrives: true,
        },
        this.call,
      ),
    );
    // The property travels with the file through edits; the checksum (when Drive has one) tells the truth.
    const file = res.data.files?.find((f) => f.id && (!f.sha256Checksum || f.sha256Checksum === sha256));
    return file?.id ? { fileId: file.id, link: linkOf(file) } : null;
  }

  async upload(request: UploadRequest): Promise<UploadResult> {
    checkSha256(request.sha256);
    const details = { fileId: request.fileId, folderId: request.folderId, size: request.size };
    const metadata: drive_v3.Schema$File = {
      id: request.fileId,
      name: request.name,
      mimeType: request.mimeType,
      parents: [request.folderId],
      appProperties: { ...request.appProperties, sha256: request.sha256 },
    };
    try {
      const file =
        request.size > this.threshold
          ? await uploadResumable({
              auth: this.options.auth,
              rootUrl: this.rootUrl,
              metadata,
              mimeType: request.mimeType,
              size: request.size,
              open: request.open,
              chunkBytes: this.chunkBytes,
              fields: FILE_FIELDS,
              policy: this.policy,
              details,
              log: this.options.log,
            })
          : await this.uploadMultipart(metadata, request, details);
      return { ...checkUploaded(file, request), alreadyExisted: false };
    } catch (err) {
      if (
        err instanceof PostroomError &&
        err.code === 'DRIVE.NOT_FOUND' &&
        request.folderId !== this.rootFolderId
      )
        throw await this.folderGone(request.folderId, err);
      if (!(err instanceof PostroomError && err.code === 'DRIVE.CONFLICT')) throw err;
    }
    // 409: a file with the reserved id exists, so an earlier attempt got through.
    const existing = await this.getFile(request.fileId);
    if (existing.appProperties?.['sha256'] !== request.sha256)
      throw new PermanentError(
        'DRIVE.ID_CONFLICT',
        `Drive file ${request.fileId} exists but holds other bytes`,
        { details },
      );
    return { fileId: request.fileId, link: linkOf(existing), alreadyExisted: true };
  }

  async openFile(fileId: string, range?: ByteRange): Promise<Readable> {
    try {
      const res = await withDriveRetry('download', { fileId }, this.policy, () =>
        this.api.files.get(
          { fileId, alt: 'media', supportsAllDrives: true },
          {
            ...this.call,
            responseType: 'stream',
            ...(range ? { headers: { Range: `bytes=${range.start}-${range.end}` } } : {}),
          },
        ),
      );
      return res.data as unknown as Readable;
    } catch (err) {
      if (err instanceof PostroomError && err.code === 'DRIVE.NOT_FOUND')
        throw new PermanentError('FILE.GONE', `Drive file ${fileId} is gone (deleted in Drive)`, {
          cause: err,
          details: { fileId },
        });
      throw err;
    }
  }

  /**
   * The files (trashed ones left out) directly in `folderId` that carry the app property `key` =
   * `value`, every page of them, oldest first. App properties are private to the OAuth client that
   * set them, so a person's or another app's files never match.
   */
  async listByAppProperty(folderId: string, key: string, value: string): Promise<ListedFile[]> {
    const files: ListedFile[] = [];
    let pageToken: string | undefined;
    do {
      const res = await withDriveRetry('list files', { folderId, key }, this.policy, () =>
        this.api.files.list(
          {
            q: `'${quote(folderId)}' in parents and appProperties has { key='${quote(key)}' and value='${quote(value)}' } and trashed = false`,
            fields: 'nextPageToken,files(id,name,createdTime,appProperties)',
            orderBy: 'createdTime',
            pageSize: 1000,
            pageToken,
            spaces: 'drive',
            supportsAllDrives: true,
            includeItemsFromAllDrives: true,
          },
          this.call,
        ),
      );
      for (const f of res.data.files ?? [])
        if (f.id)
          files.push({
            fileId: f.id,
            name: f.name ?? '',
            createdTime: f.createdTime ?? null,
            appProperties: { ...f.appProperties },
          });
      pageToken = res.data.nextPageToken ?? undefined;
    } while (pageToken);
    return files;
  }

  /**
   * Deletes a file for good (files.delete: it skips the trash, so it stops counting against the
   * quota at once). A file already gone (deleted by a concurrent call, or by hand) is not an error.
   */
  async deleteFile(fileId: string): Promise<void> {
    try {
      await withDriveRetry('delete file', { fileId }, this.policy, () =>
        this.api.files.delete({ fileId, supportsAllDrives: true }, this.call),
      );
    } catch (err) {
      if (!(err instanceof PostroomError && err.code === 'DRIVE.NOT_FOUND')) throw err;
    }
  }

  private async uploadMultipart(
    metadata: drive_v3.Schema$File,
    request: UploadRequest,
    details: Record<string, unknown>,
  ): Promise<drive_v3.Schema$File> {
    return withDriveRetry('upload', details, this.policy, async () => {
      const body = await request.open();
      try {
        const res = await this.api.files.create(
          {
            requestBody: metadata,
            media: { mimeType: request.mimeType, body },
            fields: FILE_FIELDS,
            supportsAllDrives: true,
          },
          this.call,
        );
        return res.data;
      } finally {
        body.destroy();
      }
    });
  }

  /**
   * The target folder is gone (a 404 for the parent of a new file: someone deleted it in Drive). Forgets
   * it, in this process and in `drive_folders`, so that `ensureFolder` makes it again, and says so with
   * `DRIVE.FOLDER_GONE`.
   */
  private async folderGone(folderId: string, cause: PostroomError): Promise<RetryableError> {
    this.folderCache.clear();
    await forgetFolderClaims(this.options.db, folderId);
    this.options.log?.warn(
      { folderId },
      'the Drive folder is gone (deleted by hand?): it will be made again',
    );
    return new RetryableError(FOLDER_GONE, `Drive folder ${folderId} is gone; it will be made again`, {
      cause,
      details: { folderId },
    });
  }

  private async getFile(fileId: string): Promise<drive_v3.Schema$File> {
    const res = await withDriveRetry('get file', { fileId }, this.policy, () =>
      this.api.files.get({ fileId, fields: FILE_FIELDS, supportsAllDrives: true }, this.call),
    );
    return res.data;
  }

  private async fetchIds(): Promise<void> {
    const res = await withDriveRetry('reserve ids', {}, this.policy, () =>
      this.api.files.generateIds(
        { count: this.options.idBatchSize ?? 20, space: 'drive', type: 'files' },
        this.call,
      ),
    );
    const ids = res.data.ids ?? [];
    if (ids.length === 0) throw new RetryableError('DRIVE.BAD_RESPONSE', 'files.generateIds returned no ids');
    this.ids.push(...ids);
  }

  private async findFolder(parentId: string, name: string): Promise<string | null> {
    const res = await withDriveRetry('find folder', { parentId }, this.policy, () =>
      this.api.files.list(
        {
          q: `'${quote(parentId)}' in parents and name = '${quote(name)}' and mimeType = '${FOLDER_MIME}' and trashed = false`,
          fields: 'files(id)',
          orderBy: 'createdTime',
          pageSize: 1,
          spaces: 'drive',
          supportsAllDrives: true,
          includeItemsFromAllDrives: true,
        },
        this.call,
      ),
    );
    return res.data.files?.[0]?.id ?? null;
  }

  private async createFolder(folderId: string, parentId: string, name: string): Promise<void> {
    try {
      await withDriveRetry('create folder', { folderId, parentId }, this.policy, () =>
        this.api.files.create(
          {
            requestBody: { id: folderId, name, mimeType: FOLDER_MIME, parents: [parentId] },
            fields: 'id',
            supportsAllDrives: true,
          },
          this.call,
        ),
      );
    } catch (err) {
      // 409: an earlier attempt (ours or a crashed claim holder's) made it with this very id.
      if (!(err instanceof PostroomError && err.code === 'DRIVE.CONFLICT')) throw err;
    }
  }
}

/** Escapes a value for a single-quoted string in Drive's query language. */
function quote(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/'/g, "\\'");
}

function checkSha256(sha256: string): void {
  if (!/^[0-9a-f]{64}$/.test(sha256))
    throw new PermanentError('DRIVE.BAD_REQUEST', 'sha256 must be 64 lower-case hex digits');
}

function linkOf(file: drive_v3.Schema$File): string {
  return file.webViewLink ?? `https://drive.google.com/file/d/${file.id}/view`;
}

/** Checks Drive's answer against what was meant to be sent: same id, size and SHA-256 (when reported). */
function checkUploaded(file: drive_v3.Schema$File, request: UploadRequest): StoredFile {
  const details = {
    fileId: request.fileId,
    got: { id: file.id, size: file.size, sha256: file.sha256Checksum },
  };
  if (file.id !== request.fileId)
    throw new PermanentError('DRIVE.BAD_RESPONSE', `Drive filed ${request.fileId} as ${file.id}`, {
      details,
    });
  // Drive reports int64 sizes as strings.
  if (
    (file.size != null && Number(file.size) !== request.size) ||
    (file.sha256Checksum && file.sha256Checksum !== request.sha256)
  )
    throw new PermanentError(
      'DRIVE.CHECKSUM_MISMATCH',
      `Drive holds other bytes than were sent for ${request.fileId}`,
      { details },
    );
  return { fileId: request.fileId, link: linkOf(file) };
}
