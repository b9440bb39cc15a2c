import { createHash, randomBytes } from 'node:crypto';
import { link, mkdir, mkdtemp, readdir, readFile, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../../infra/errors.js';
import type { UploadRequest } from './file-store.js';
import { LocalFileStore } from './local-file-store.js';

let dir: string;
let store: LocalFileStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'postroom-local-store-'));
  store = new LocalFileStore({ dir });
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

function file(data: Buffer | string, name = 'report.pdf'): Omit<UploadRequest, 'fileId' | 'folderId'> {
  const bytes = Buffer.from(data);
  return {
    name,
    mimeType: 'application/pdf',
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    appProperties: { emailId: 'e1' },
    open: () => Readable.from([bytes]),
  };
}

const visible = async (folder: string) =>
  (await readdir(join(dir, folder))).filter((n) => !n.startsWith('.')).sort();

describe('LocalFileStore', () => {
  it('makes folders on demand; folder ids are relative paths', async () => {
    expect(await store.ensureFolder([])).toBe('.');
    expect(await store.ensureFolder(['2026', '11', 'ana@example.com'])).toBe('2026/11/ana@example.com');
    expect(await readdir(join(dir, '2026', '11'))).toEqual(['ana@example.com']);
  });

  it('files the bytes exactly under their name and links them with a file:// URL', async () => {
    const folderId = await store.ensureFolder(['exact']);
    const data = randomBytes(12 * 1024 * 1024);
    const fileId = await store.reserveFileId();
    const result = await store.upload({ ...file(data, 'scan.pdf'), fileId, folderId });
    expect(result.alreadyExisted).toBe(false);
    expect(result.link).toMatch(/^file:\/\//);
    expect(fileURLToPath(result.link)).toBe(join(dir, 'exact', 'scan.pdf'));
    expect((await readFile(join(dir, 'exact', 'scan.pdf'))).equals(data)).toBe(true);
    expect(await readdir(join(dir, '.postroom', 'tmp'))).toEqual([]);
  });

  it('files a reserved id once, however often it is uploaded', async () => {
    const folderId = await store.ensureFolder(['once']);
    const fileId = await store.reserveFileId();
    const first = await store.upload({ ...file('same'), fileId, folderId });
    const again = await new LocalFileStore({ dir }).upload({ ...file('same'), fileId, folderId });
    expect(again).toEqual({ ...first, alreadyExisted: true });
    expect(await visible('once')).toEqual(['report.pdf']);
    await expect(store.upload({ ...file('other bytes'), fileId, folderId })).rejects.toMatchObject({
      code: 'STORAGE.ID_CONFLICT',
    });
  });

  it('makes its directories again when they are removed while it runs', async () => {
    const folderId = await store.ensureFolder(['removed']);
    await store.upload({ ...file('before'), fileId: await store.reserveFileId(), folderId });
    // Directories it made earlier (and cached as made) are deleted by hand.
    await rm(join(dir, 'removed'), { recursive: true });
    await rm(join(dir, '.postroom', 'tmp'), { recursive: true });
    const fileId = await store.reserveFileId();
    const result = await store.upload({ ...file('after'), fileId, folderId });
    expect(result).toMatchObject({ fileId, alreadyExisted: false });
    expect(await readFile(join(dir, 'removed', 'report.pdf'), 'utf8')).toBe('after');
  });

  it('gives a second file of the same name a numbered name, never replacing the first', async () => {
    const folderId = await store.ensureFolder(['names']);
    await store.upload({ ...file('one'), fileId: await store.reserveFileId(), folderId });
    const second = await store.upload({ ...file('two'), fileId: await store.reserveFileId(), folderId });
    expect(await visible('names')).toEqual(['report (2).pdf', 'report.pdf']);
    expect(fileURLToPath(second.link)).toBe(join(dir, 'names', 'report (2).pdf'));
    expect(await readFile(join(dir, 'names', 'report.pdf'), 'utf8')).toBe('one');
  });

  it('finds identical bytes in the same folder only, and forgets a file deleted by hand', async () => {
    const folderId = await store.ensureFolder(['dedupe']);
    const other = await store.ensureFolder(['dedupe-other']);
    const req = file('dedupe me');
    const fileId = await store.reserveFileId();
    const { link: url } = await store.upload({ ...req, fileId, folderId });
    expect(await store.findBySha256(folderId, req.sha256)).toEqual({ fileId, link: url });
    expect(await store.findBySha256(other, req.sha256)).toBeNull();
    await unlink(fileURLToPath(url));
    expect(await store.findBySha256(folderId, req.sha256)).toBeNull();
  });

  it('keeps nothing when the bytes are not the ones announced', async () => {
    const folderId = await store.ensureFolder(['mismatch']);
    const req = { ...file('actual'), sha256: 'a'.repeat(64) };
    const err = await store
      .upload({ ...req, fileId: await store.reserveFileId(), folderId })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'STORAGE.CHECKSUM_MISMATCH' });
    expect(await visible('mismatch')).toEqual([]);
  });

  it('recognises its own file after a crash between the link and the record', async () => {
    const folderId = await store.ensureFolder(['crash']);
    const fileId = await store.reserveFileId();
    // What a process that died right after linking leaves behind: the intent and the linked file.
    await mkdir(join(dir, '.postroom', 'placing'), { recursive: true });
    await writeFile(
      join(dir, '.postroom', 'placing', `${fileId}.json`),
      JSON.stringify({ name: 'report.pdf' }),
    );
    await writeFile(join(dir, 'crash', 'orphan.tmp'), 'survivor');
    await link(join(dir, 'crash', 'orphan.tmp'), join(dir, 'crash', 'report.pdf'));
    await unlink(join(dir, 'crash', 'orphan.tmp'));
    const result = await store.upload({ ...file('survivor'), fileId, folderId });
    expect(fileURLToPath(result.link)).toBe(join(dir, 'crash', 'report.pdf'));
    expect(await visible('crash')).toEqual(['report.pdf']);
  });

  it('lets one process at a time file an id, and breaks a stale lock', async () => {
    const folderId = await store.ensureFolder(['locked']);
    const fileId = await store.reserveFileId();
    const lock = join(dir, '.postroom', 'locks', `${fileId}.lock`);
    await mkdir(join(dir, '.postroom', 'locks'), { recursive: true });
    await writeFile(lock, '999999\n');
    const err = await store.upload({ ...file('wait'), fileId, folderId }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: 'STORAGE.BUSY' });
    const old = new Date(Date.now() - 3_600_000);
    await utimes(lock, old, old);
    expect((await store.upload({ ...file('wait'), fileId, folderId })).alreadyExisted).toBe(false);
  });

  it('refuses folder ids and names that would leave their place', async () => {
    const req = { ...file('x'), fileId: await store.reserveFileId() };
    for (const folderId of ['../outside', '.postroom', 'a/../../b', '/etc'])
      await expect(store.upload({ ...req, folderId })).rejects.toMatchObject({ code: 'STORAGE.BAD_FOLDER' });
    await expect(store.upload({ ...req, folderId: '.', name: '../x' })).rejects.toMatchObject({
      code: 'STORAGE.BAD_NAME',
    });
    await expect(store.upload({ ...req, folderId: '.', fileId: '../x' })).rejects.toMatchObject({
      code: 'STORAGE.BAD_ID',
    });
  });
});
