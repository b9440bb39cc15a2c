import type { Readable } from 'node:stream';

/**
 * Where accepted attachments are filed: Google Drive, or a local directory when no Google credentials
 * are configured. Both keep the same rules, so the upload handler does not care which it has:
 *
 * - Folders are made on demand from a path of names and cached; two processes asking for the same
 *   path at once get the same single folder.
 * - Uploads are exactly-once: the caller reserves a file id (`reserveFileId`) and stores it before
 *   uploading; uploading again with that id (after a crash, a redelivery) finds the file already there
 *   (`alreadyExisted: true`) instead of making a second one.
 * - Identical bytes already filed in a folder are found by SHA-256 (`findBySha256`).
 *
 * Failures are Postroom errors: `RetryableError` for what may heal (rate limits, 5xx, network), after
 * the store's own bounded retries; `PermanentError` with a `DRIVE.*` or `STORAGE.*` code for the rest.
 */
export interface FileStore {
  /** `drive` or `local`, as `attachment.uploaded` reports it. */
  readonly backend: 'drive' | 'local';
  /** Id of the folder every path starts from (`DRIVE_ROOT_FOLDER_ID`, or `.` locally). */
  readonly rootFolderId: string;
  /**
   * Returns the id of the folder at `path` (names from the root down, already made safe), creating the
   * missing ones. An empty path is the root itself.
   */
  ensureFolder(path: readonly string[]): Promise<string>;
  /** A fresh file id to store (in MySQL) before uploading with it. */
  reserveFileId(): Promise<string>;
  /**
   * The id of the file filed for `key` (what the file is: `attachment:<id>`), derived from the key
   * alone, for a store that accepts ids it did not hand out. The same key always gives the same id, so
   * a retry after a crash finds its own file without an id stored first: no write before the upload.
   * Absent (Drive, whose ids come from `generateIds`): reserve and store an id instead.
   */
  fileIdFor?(key: string): string;
  /** The file with these bytes (by its `sha256` app property) in the folder, or null. */
  findBySha256(folderId: string, sha256: string): Promise<StoredFile | null>;
  /** Files the bytes under the reserved id; see `UploadRequest` and `UploadResult`. */
  upload(request: UploadRequest): Promise<UploadResult>;
  /**
   * Reads a filed file back as a stream (Drive: `files.get` with `alt=media`), the whole file or the
   * bytes `range.start` to `range.end` (inclusive). A file that is no longer there (deleted by hand)
   * rejects with a `PermanentError` coded `FILE.GONE`. The bytes are not checked here: the caller
   * knows the SHA-256 they must have.
   */
  openFile(fileId: string, range?: ByteRange): Promise<Readable>;
}

/** An inclusive byte range. */
export interface ByteRange {
  /** First byte (from 0). */
  start: number;
  /** Last byte, inclusive. */
  end: number;
}

/** A filed file. */
export interface StoredFile {
  /** Drive file id (or the local store's id). */
  fileId: string;
  /** Where a person opens it: Drive's `webViewLink`, or a `file://` URL locally. */
  link: string;
}

/** One upload. */
export interface UploadRequest {
  /** Id from `reserveFileId`, already stored by the caller. */
  fileId: string;
  /** Target folder, from `ensureFolder`. */
  folderId: string;
  /** File name as filed (already made safe). */
  name: string;
  /** MIME type to file it under. */
  mimeType: string;
  /** Size in bytes; picks multipart or resumable upload and is checked against the bytes read. */
  size: number;
  /** Lower-case hex SHA-256 of the bytes; stored as the `sha256` app property and checked. */
  sha256: string;
  /** More app properties (email id, attachment id); keys and values short (Drive: 124 bytes a pair). */
  appProperties?: Record<string, string>;
  /** Opens the bytes from the start; called again for each attempt, so it must give a fresh stream. */
  open: () => Readable | Promise<Readable>;
}

/** What an upload ended with. */
export interface UploadResult extends StoredFile {
  /** True when a file with this id was already there (an earlier attempt got through): no second file was made. */
  alreadyExisted: boolean;
}

/**
 * Code of the error `upload` fails with when its target folder no longer exists (deleted by hand).
 * The store has forgotten the folder: `ensureFolder` makes it again, and the upload can be repeated.
 */
export const FOLDER_GONE = 'DRIVE.FOLDER_GONE';
