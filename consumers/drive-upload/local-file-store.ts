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
import { PermanentError, RetryableError } from '../../infra/errors.js';
import type { FileStore, StoredFile, UploadRequest, UploadResult } from './file-store.js';

/** Options of `LocalFileStore`. */
export interface LocalFileStoreOptions {
  /** Directory files are filed under (`STORAGE_DIR`); created when missing. */
  dir: string;
  /** A lock older than this (ms) belongs to a dead process and is broken (default 10 minutes). */
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

/**
 * Files under a local directory, in the folder layout Drive would get, with Drive's rules: folder ids
 * are paths relative to the directory (`.` for the root, `2026/11/ana@example.com`), file ids are
 * reserved up front, and the same id never makes a second file. Bookkeeping lives in `.postroom/`
 * (hidden from the layout: folder names never start with a dot):
 *
 * - `files/<id>.json` records a filed file; its presence is what "already there" means.
 * - `sha256/<hash of folder and sha256>.json` points to the file with those bytes in that folder.
 * - `locks/<id>.lock` (exclusive create) keeps two processes from filing the same id at once.
 * - `placing/<id>.json` names the file about to be linked, so a retry after a crash between the link
 *   and the record recognises its own file instead of filing a copy.
 *
 * Bytes are written to `tmp/`, fsynced and checked against the size and SHA-256 announced, then
 * hard-linked under their name (atomic, and never replacing a file of the same name: that one gets
 * ` (2)`), so a reader never sees a partial file. Links are `file://` URLs.
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

  async findBySha256(folderId: string, sha256: string): Promise<StoredFile | null> {
    checkSha256(sha256);
    const pointer = await readJson<{ fileId: string }>(this.shaPath(folderId, sha256));
    const record = pointer && (await readJson<FileRecord>(this.recordPath(pointer.fileId)));
    if (!record || record.sha256 !== sha256) return null;
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

  private async uploadOnce(request: UploadRequest): Promise<UploadResult> {
    checkSha256(request.sha256);
    checkId(request.fileId);
    const folder = this.folderPath(request.folderId);
    const name = safeFileName(request.name);
    for (const sub of ['files', 'sha256', 'tmp', 'locks', 'placing'])
      await this.makeDir(join(this.meta, sub));
    const release = await this.lock(request.fileId);
    try {
      const done = await readJson<FileRecord>(this.recordPath(request.fileId));
      if (done) {
        if (done.sha256 !== request.sha256)
          throw new PermanentError(
            'STORAGE.ID_CONFLICT',
            `Local file ${request.fileId} exists but holds other bytes`,
          );
        return { fileId: done.fileId, link: this.linkOf(done), alreadyExisted: true };
      }
      await this.makeDir(folder);
      const tmp = join(this.meta, 'tmp', `${request.fileId}.${randomBytes(4).toString('hex')}.part`);
      try {
        await this.writeChecked(tmp, request);
        const filed = await this.place(tmp, folder, name, request);
        const record: FileRecord = {
          fileId: request.fileId,
          folderId: request.folderId,
          name: filed,
          sha256: request.sha256,
          size: request.size,
          mimeType: request.mimeType,
          appProperties: { ...request.appProperties, sha256: request.sha256 },
          createdAt: new Date().toISOString(),
        };
        await writeJsonAtomic(this.recordPath(request.fileId), record);
        await writeJsonAtomic(this.shaPath(request.folderId, request.sha256), { fileId: request.fileId });
        await unlink(join(this.meta, 'placing', `${request.fileId}.json`)).catch(() => undefined);
        return { fileId: request.fileId, link: this.linkOf(record), alreadyExisted: false };
      } finally {
        await unlink(tmp).catch(() => undefined);
      }
    } finally {
      await release();
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

  /** Links `tmp` into the folder under the first free name; returns the name used. */
  private async place(tmp: string, folder: string, name: string, request: UploadRequest): Promise<string> {
    const intentPath = join(this.meta, 'placing', `${request.fileId}.json`);
    const intent = await readJson<{ name: string }>(intentPath);
    if (intent && (await sha256OfFile(join(folder, intent.name))) === request.sha256) return intent.name;
    for (let n = 1; n <= 1000; n++) {
      const candidate = numbered(name, n);
      await writeJsonAtomic(intentPath, { name: candidate });
      try {
        await link(tmp, join(folder, candidate)).catch(async (err: NodeJS.ErrnoException) => {
          // File systems without hard links: an exclusive copy (never replaces, but not atomic).
          if (err.code === 'EPERM' || err.code === 'ENOTSUP' || err.code === 'EXDEV')
            await copyFile(tmp, join(folder, candidate), constants.COPYFILE_EXCL);
          else throw err;
        });
        return candidate;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    throw new PermanentError('STORAGE.NAME_TAKEN', `No free name for ${name} in ${request.folderId}`);
  }

  /** Takes the per-id lock (breaking a stale one); returns its release. */
  private async lock(fileId: string): Promise<() => Promise<void>> {
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

async function readJson<T>(path: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Writes JSON beside its target and renames it into place, so readers see the old or the new whole. */
async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, JSON.stringify(value));
  await rename(tmp, path);
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
