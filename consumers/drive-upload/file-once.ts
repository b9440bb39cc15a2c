import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { LOCK_BUSY, withNamedLock } from '../../infra/db/named-lock.js';
import type { Db } from '../../infra/db/database.js';
import { RetryableError } from '../../infra/errors.js';
import type { FileStore, StoredFile } from '../../infra/drive/file-store.js';

/** How filing one file ended (before it is recorded). */
export interface FilingOutcome {
  status: 'uploaded' | 'skipped' | 'failed';
  file: StoredFile | null;
  /** Folder path under the root. */
  folder: string;
  /** What happened, for the timeline. */
  detail: string;
}

/** One file to file into a folder exactly once. */
export interface FileOnceRequest {
  store: FileStore;
  db: Db;
  /** Target folder id (from `ensureFolder`) and its path, for messages. */
  folderId: string;
  folder: string;
  /** The bytes: their SHA-256, size, and how to read them. */
  sha256: string;
  size: number;
  open: () => Promise<Readable>;
  /** Name as filed (already safe) and MIME type. */
  name: string;
  mimeType: string;
  /** More app properties (email id, attachment id). */
  appProperties: Record<string, string>;
  /** What the file is (`attachment:<id>`, `pdf:<id>`): a store with `fileIdFor` derives its id from it. */
  idKey: string;
  /** The file id reserved by an earlier attempt, or null. */
  reservedFileId: string | null;
  /** Stores a freshly reserved file id (in MySQL) before the upload uses it. */
  saveReservedId: (fileId: string) => Promise<void>;
  /**
   * Reads the reserved file id as stored now. `reservedFileId` may have been read before a filing of
   * this very file stored its reservation (the same event delivered twice in one burst): asked only
   * when identical bytes are found under another id, to tell that earlier attempt from another file.
   */
  readReservedId: () => Promise<string | null>;
}

/**
 * Files bytes into a folder exactly once, under a named lock on (folder, SHA-256): identical bytes
 * already there are linked (`skipped`); otherwise a file id is reserved and stored before the upload,
 * so a retry after a crash uploads with the same id and finds the file already there. Throws a
 * `RetryableError` when another process holds the lock past the wait.
 */
export async function fileOnce(req: FileOnceRequest): Promise<FilingOutcome> {
  const lockName = `postroom:file:${createHash('sha256').update(`${req.folderId}\n${req.sha256}`).digest('hex').slice(0, 40)}`;
  const filed = await withNamedLock(req.db, lockName, 60, async () => {
    // An id reserved earlier wins (a filing begun before the store derived ids); else the derived one.
    let fileId = req.reservedFileId ?? req.store.fileIdFor?.(req.idKey) ?? null;
    const existing = await req.store.findBySha256(req.folderId, req.sha256);
    if (existing && existing.fileId !== fileId && existing.fileId === (await req.readReservedId()))
      fileId = existing.fileId; // filed by an earlier attempt at this very file: uploaded, not skipped
    if (existing && existing.fileId !== fileId)
      return {
        status: 'skipped',
        file: existing,
        folder: req.folder,
        detail: `same bytes already filed as ${existing.fileId}`,
      } satisfies FilingOutcome;
    if (!fileId) {
      // Reserved and stored before the upload: a retry after a crash reuses it (a 409 then means
      // "already there").
      fileId = await req.store.reserveFileId();
      await req.saveReservedId(fileId);
    }
    const result = await req.store.upload({
      fileId,
      folderId: req.folderId,
      name: req.name,
      mimeType: req.mimeType,
      size: req.size,
      sha256: req.sha256,
      appProperties: req.appProperties,
      open: req.open,
    });
    return {
      status: 'uploaded',
      file: { fileId: result.fileId, link: result.link },
      folder: req.folder,
      detail: result.alreadyExisted ? `already uploaded as ${result.fileId}` : `uploaded as ${result.fileId}`,
    } satisfies FilingOutcome;
  });
  if (filed === LOCK_BUSY)
    throw new RetryableError(
      'DRIVE.LOCK_TIMEOUT',
      `Another consumer is filing the same bytes into ${req.folder}`,
    );
  return filed;
}

/** `readReservedId` for a file id reserved in a column of an attachment's row. */
export function reservedIdOf(
  db: Db,
  attachmentId: string,
  column: 'drive_file_id' | 'pdf_drive_file_id',
): () => Promise<string | null> {
  return async () => {
    const row = await db
      .selectFrom('attachments')
      .select(column)
      .where('id', '=', attachmentId)
      .executeTakeFirst();
    return (row as Record<typeof column, string | null> | undefined)?.[column] ?? null;
  };
}
