import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  copyFile,
  constants,
  link,
  mkdir,
  open,
  readFile,
  rename,
  stat,
  unlink,
  writeFile,
  type FileHandle,
} from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PermanentError, RetryableError } from '../errors.js';
import type { Readable } from 'node:stream';
import type { ByteRange, FileStore, StoredFile, UploadRequest, UploadResult } from './file-store.js';

/** Options of `LocalFileStore`. */
export interface LocalFileStoreOptions {
  /** Directory files are filed under (`STORAGE_DIR`); created when missing. */
  dir: string;
  /**
   * A lock (only taken where bytes are copied instead of linked, see `LocalFileStore`) older than this
   * (ms) belongs to a dead process and is broken (default 10 minutes).
   */
  lockStaleMs?: number;
}

/** What is kept of each filed file in `.postroom/files/<id>.json`. */
interface FileRecord {
  fileId: string;
  folderId: string;
  /** Name as filed (a ` (2)` suffix when the name was taken). */
  name: string;
  sha256: string;
  size: number;
  mimeType: string;
  appProperties: Record<string, string>;
  createdAt: string;
}

/** Where `place` put the bytes. */
interface Placed {
  /** Name in the folder. */
  name: string;
  /** True when the name already held these bytes (an earlier or concurrent filing of them). */
  found: boolean;
}

/**
 * Files under a local directory, in the folder layout Drive would get, with Drive's rules: folder ids
 * are paths relative to the directory (`.` for the root, `2026/11/ana@example.com`), file ids are
 * reserved up front, and the same id never makes a second file. Bookkeeping lives in `.postroom/`
 * (hidden from the layout: folder names never start with a dot):
 *
 * - `files/<id>.json` records a filed file; its presence is what "already there" means.
 * - `sha256/<hash of folder and sha256>.json` is a hard link to the record of the file last filed with
 *   those bytes in that folder, so that `findBySha256` reads one file.
 * - `tmp/` holds bytes being written.
 *
 * Bytes are written to `tmp/`, fsynced and checked against the size and SHA-256 announced, then
 * hard-linked under their name (atomic, and never replacing a file of the same name: that one gets
 * ` (2)`), so a reader never sees a partial file. Links are `file://` URLs.
 *
 * Placing recognises its own work: a name that already holds a file of the same size and SHA-256 is
 * taken as this very file, linked by an earlier attempt or by a concurrent filer of the same bytes, and
 * reused rather than filing a copy under the next name. So no lock and no record of intent are needed
 * (filing a small file takes eleven file-system calls): two processes filing the same id at once
 * converge on one file, and a retry after a crash at any point ends with one file:
 *
 * - Before the link (bytes half written, or written but not linked): nothing is visible; a stray
 *   `.part` may stay in `tmp/` (never read again, safe to delete). The retry files the bytes anew.
 * - After the link, before the record: the retry finds its bytes under the name and records them
 *   (`alreadyExisted: true`).
 * - During the record write: records are written in place, in one call and without fsync, so a crash
 *   (or a reader racing a concurrent filer of the id) can meet a torn one. It does not parse, and what
 *   does not parse counts as absent: the retry does as above and writes the record whole.
 * - After the record, before its `sha256/` link: the retry finds the record (`alreadyExisted: true`)
 *   and makes the link; until then `findBySha256` misses the file, and filing the bytes under another
 *   id finds them under the name (no copy).
 * - After the `sha256/` link: only the tmp file is left over.
 *
 * So identical bytes under one name in a folder are one file, whichever ids file them. What a retry
 * cannot tell is a hand edit made between a crash and the retry: renaming the file, or freeing an
 * earlier name, makes the retry file a second copy.
 *
 * Where the bytes cannot be hard-linked (a file system without hard links, or a folder on another
 * device) they are copied in with an exclusive create instead: never replacing a file, but not atomic,
 * so a reader can catch a partial copy, a crash mid-copy leaves one (its retry files a whole copy
 * beside it), and a copy in progress cannot be recognised. Filers of an id then take turns under
 * `locks/<id>.lock` (exclusive create; one older than `lockStaleMs` belongs to a dead process and is
 * broken), and each starts from the first name again.
 */
export class LocalFileStore implements FileStore {
  readonly backend = 'local';
  readonly rootFolderId = '.';
  private readonly dir: string;
  private readonly meta: string;
  private readonly lockStaleMs: number;
  /**
   * Directories this store has made (or found) already, so that an upload does not ask the file
   * system again each time. Forgotten when a step meets ENOENT: one was removed under us.
   */
  private readonly made = new Set<string>();

  constructor(options: LocalFileStoreOptions) {
    this.dir = resolve(options.dir);
    this.meta = join(this.dir, '.postroom');
    this.lockStaleMs = options.lockStaleMs ?? 600_000;
  }

  async ensureFolder(path: readonly string[]): Promise<string> {
    const folderId = path.length === 0 ? '.' : path.join('/');
    await this.makeDir(this.folderPath(folderId));
    return folderId;
  }

  async reserveFileId(): Promise<string> {
    return `L${randomBytes(18).toString('base64url')}`;
  }

  fileIdFor(key: string): string {
    // `K`, not `L`: never equal to a reserved id. 144 bits of SHA-256, as many as a reserved id has.
    return `K${createHash('sha256').update(key, 'utf8').digest().subarray(0, 18).toString('base64url')}`;
  }

  async findBySha256(folderId: string, sha256: string): Promise<StoredFile | null> {
    checkSha256(sha256);
    const entry = await readJson<FileRecord | { fileId: string }>(this.shaPath(folderId, sha256));
    // Entries written before they were links to the record hold only the file id.
    const record =
      entry && !('sha256' in entry) ? await readJson<FileRecord>(this.recordPath(entry.fileId)) : entry;
    if (!record || record.sha256 !== sha256 || record.folderId !== folderId) return null;
    // A file deleted by hand is gone: the next upload files it again.
    const exists = await stat(this.filePath(record)).then(
      () => true,
      () => false,
    );
    return exists ? { fileId: record.fileId, link: this.linkOf(record) } : null;
  }

  async upload(request: UploadRequest): Promise<UploadResult> {
    try {
      return await this.uploadOnce(request);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || this.made.size === 0) throw err;
      // A directory made earlier is gone (removed by hand): make them all again and retry, which is
      // safe for the same reasons a redelivery is.
      this.made.clear();
      return this.uploadOnce(request);
    }
  }

  async openFile(fileId: string, range?: ByteRange): Promise<Readable> {
    const gone = () =>
      new PermanentError('FILE.GONE', `File ${fileId} is no longer in ${this.dir}`, { details: { fileId } });
    const record = await readJson<FileRecord>(this.recordPath(fileId));
    if (!record) throw gone();
    // Opened here, not lazily by the stream: a file deleted by hand is known before any byte is promised.
    const fh = await open(this.filePath(record), 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? gone() : err;
    });
    return fh.createReadStream(range ? { start: range.start, end: range.end } : {});
  }

  private async uploadOnce(request: UploadRequest): Promise<UploadResult> {
    checkSha256(request.sha256);
    checkId(request.fileId);
    const folder = this.folderPath(request.folderId);
    const name = safeFileName(request.name);
    for (const sub of ['files', 'sha256', 'tmp']) await this.makeDir(join(this.meta, sub));
    const done = await readJson<FileRecord>(this.recordPath(request.fileId));
    if (done) {
      if (done.sha256 !== request.sha256)
        throw new PermanentError(
          'STORAGE.ID_CONFLICT',
          `Local file ${request.fileId} exists but holds other bytes`,
        );
      // A crash right after the record left it without its `sha256/` link: make it.
      await this.pointTo(done, false);
      return { fileId: done.fileId, link: this.linkOf(done), alreadyExisted: true };
    }
    await this.makeDir(folder);
    const tmp = join(this.meta, 'tmp', `${request.fileId}.${randomBytes(4).toString('hex')}.part`);
    try {
      await this.writeChecked(tmp, request);
      const placed = await this.place(tmp, folder, name, request);
      const record: FileRecord = {
        fileId: request.fileId,
        folderId: request.folderId,
        name: placed.name,
        sha256: request.sha256,
        size: request.size,
        mimeType: request.mimeType,
        appProperties: { ...request.appProperties, sha256: request.sha256 },
        createdAt: new Date().toISOString(),
      };
      // In place, in one call: no tmp file and rename, as a torn record counts as absent (class comment).
      await writeFile(this.recordPath(request.fileId), JSON.stringify(record));
      await this.pointTo(record, true);
      return { fileId: request.fileId, link: this.linkOf(record), alreadyExisted: placed.found };
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  /** Streams the bytes to `tmp` through one file handle, fsyncs it, and checks size and SHA-256. */
  private async writeChecked(tmp: string, request: UploadRequest): Promise<void> {
    const hash = createHash('sha256');
    let size = 0;
    const source = await request.open();
    let fh: FileHandle;
    try {
      fh = await open(tmp, 'wx');
    } catch (err) {
      source.destroy();
      throw err;
    }
    try {
      for await (const piece of source as AsyncIterable<Buffer | string>) {
        const chunk = typeof piece === 'string' ? Buffer.from(piece) : piece;
        hash.update(chunk);
        size += chunk.length;
        for (let off = 0; off < chunk.length;) off += (await fh.write(chunk, off)).bytesWritten;
      }
      await fh.sync();
    } finally {
      source.destroy();
      await fh.close();
    }
    const sha256 = hash.digest('hex');
    if (size !== request.size || sha256 !== request.sha256)
      throw new PermanentError(
        'STORAGE.CHECKSUM_MISMATCH',
        `The bytes read for ${request.fileId} are not the ones announced`,
        {
          details: { expected: { size: request.size, sha256: request.sha256 }, got: { size, sha256 } },
        },
      );
  }

  /**
   * Links `tmp` into the folder under the first name that is free or already holds these bytes; where
   * it cannot be linked, copies it under the id's lock instead (see the class comment).
   */
  private async place(tmp: string, folder: string, name: string, request: UploadRequest): Promise<Placed> {
    let placed: Placed | null;
    try {
      placed = await placeBy(link, tmp, folder, name, request);
    } catch (err) {
      if (!cannotLink(err)) throw err;
      const release = await this.lock(request.fileId);
      try {
        placed = await placeBy(copyExclusive, tmp, folder, name, request);
      } finally {
        await release();
      }
    }
    if (!placed)
      throw new PermanentError('STORAGE.NAME_TAKEN', `No free name for ${name} in ${request.folderId}`);
    return placed;
  }

  /**
   * Links the `sha256/` entry of the record's folder and bytes to the record. An entry already there
   * (this record's, or one of the same bytes filed before and then deleted by hand) is left alone
   * unless `replace`: then a link made beside it is renamed over it, so the entry is whole at all times.
   */
  private async pointTo(record: FileRecord, replace: boolean): Promise<void> {
    const from = this.recordPath(record.fileId);
    const to = this.shaPath(record.folderId, record.sha256);
    try {
      await linkOrCopy(from, to);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (!replace) return;
    const tmp = `${to}.${randomBytes(4).toString('hex')}.tmp`;
    await linkOrCopy(from, tmp);
    await rename(tmp, to);
  }

  /** Takes the per-id lock (breaking a stale one); returns its release. */
  private async lock(fileId: string): Promise<() => Promise<void>> {
    await this.makeDir(join(this.meta, 'locks'));
    const path = join(this.meta, 'locks', `${fileId}.lock`);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(path, `${process.pid}\n`, { flag: 'wx' });
        return () => unlink(path).catch(() => undefined);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const age =
          Date.now() -
          (await stat(path).then(
            (s) => s.mtimeMs,
            () => Date.now(),
          ));
        if (age < this.lockStaleMs)
          throw new RetryableError('STORAGE.BUSY', `Local file ${fileId} is being filed by another process`);
        await unlink(path).catch(() => undefined);
      }
    }
    throw new RetryableError('STORAGE.BUSY', `Local file ${fileId} is being filed by another process`);
  }

  /** `mkdir -p`, once per directory and process (see `made`). */
  private async makeDir(path: string): Promise<void> {
    if (this.made.has(path)) return;
    await mkdir(path, { recursive: true });
    if (this.made.size >= 10_000) this.made.clear(); // a cache, not a record: keep it small
    this.made.add(path);
  }

  /** Absolute path of a folder id, refusing anything that would leave the directory or enter `.postroom`. */
  private folderPath(folderId: string): string {
    const parts = folderId === '.' ? [] : folderId.split('/');
    if (parts.some((p) => p === '' || p.startsWith('.') || p.includes('\\') || p.includes('\0')))
      throw new PermanentError(
        'STORAGE.BAD_FOLDER',
        `Not a folder id of this store: ${JSON.stringify(folderId)}`,
      );
    const path = resolve(this.dir, ...parts);
    if (path !== this.dir && !path.startsWith(this.dir + sep))
      throw new PermanentError(
        'STORAGE.BAD_FOLDER',
        `Folder ${JSON.stringify(folderId)} is outside the storage directory`,
      );
    return path;
  }

  private filePath(record: FileRecord): string {
    return join(this.folderPath(record.folderId), record.name);
  }

  private recordPath(fileId: string): string {
    checkId(fileId);
    return join(this.meta, 'files', `${fileId}.json`);
  }

  private shaPath(folderId: string, sha256: string): string {
    return join(
      this.meta,
      'sha256',
      `${createHash('sha256').update(`${folderId}\0${sha256}`).digest('hex')}.json`,
    );
  }

  private linkOf(record: FileRecord): string {
    return pathToFileURL(this.filePath(record)).href;
  }
}

/**
 * Puts `tmp` with `put` (which fails with EEXIST on a taken name) under the first name in `folder`
 * that is free, or that holds these very bytes already; null when a thousand names are taken.
 */
async function placeBy(
  put: (from: string, to: string) => Promise<void>,
  tmp: string,
  folder: string,
  name: string,
  request: UploadRequest,
): Promise<Placed | null> {
  for (let n = 1; n <= 1000; n++) {
    const candidate = numbered(name, n);
    try {
      await put(tmp, join(folder, candidate));
      return { name: candidate, found: false };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await holds(join(folder, candidate), request.size, request.sha256))
      return { name: candidate, found: true };
  }
  return null;
}

/** Whether `path` is a file of exactly these bytes: the size first (one stat), then the SHA-256. */
async function holds(path: string, size: number, sha256: string): Promise<boolean> {
  const s = await stat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null; // removed since: not ours to reuse
    throw err;
  });
  return s !== null && s.isFile() && s.size === size && (await sha256OfFile(path)) === sha256;
}

/** Whether a `link` failed because there can be no hard link there (not for a taken name, say). */
function cannotLink(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'EPERM' || code === 'ENOTSUP' || code === 'EXDEV';
}

/** An exclusive copy: never replaces a file, but is not atomic. */
function copyExclusive(from: string, to: string): Promise<void> {
  return copyFile(from, to, constants.COPYFILE_EXCL);
}

/** A hard link, or where there can be none, an exclusive copy. */
async function linkOrCopy(from: string, to: string): Promise<void> {
  try {
    await link(from, to);
  } catch (err) {
    if (!cannotLink(err)) throw err;
    await copyExclusive(from, to);
  }
}

/** `name`, then `name (2).ext`, `name (3).ext` ..., kept within 255 bytes. */
function numbered(name: string, n: number): string {
  const dot = name.lastIndexOf('.');
  const [base, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  const suffix = n === 1 ? '' : ` (${n})`;
  let b = base;
  while (Buffer.byteLength(b + suffix + ext) > 255 && b.length > 1) b = Array.from(b).slice(0, -1).join('');
  return b + suffix + ext;
}

/** Refuses names that are not a single file name; a leading dot (hidden file) becomes `_`. */
function safeFileName(name: string): string {
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name))
    throw new PermanentError('STORAGE.BAD_NAME', `Not a safe file name: ${JSON.stringify(name)}`);
  return name.replace(/^\./, '_');
}

function checkId(fileId: string): void {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(fileId))
    throw new PermanentError('STORAGE.BAD_ID', `Not a file id of this store: ${JSON.stringify(fileId)}`);
}

function checkSha256(sha256: string): void {
  if (!/^[0-9a-f]{64}$/.test(sha256))
    throw new PermanentError('STORAGE.BAD_REQUEST', 'sha256 must be 64 lower-case hex digits');
}

/**
 * The JSON at `path`, or null when there is none or it does not parse (torn by a crash mid-write, see
 * `LocalFileStore`): all that is kept is re-derived by filing again.
 */
async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if (err instanceof SyntaxError || (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function sha256OfFile(path: string): Promise<string | null> {
  try {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    return hash.digest('hex');
  } catch {
    return null;
  }
}
