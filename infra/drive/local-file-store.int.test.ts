import { createHash, randomBytes } from 'node:crypto';
import {
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  truncate,
  unlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../errors.js';
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

  it('files the same id once when two processes file it at the same moment', async () => {
    const folderId = await store.ensureFolder(['race']);
    const fileId = await store.reserveFileId();
    const data = randomBytes(3 * 1024 * 1024);
    const results = await Promise.all(
      [1, 2, 3].map(() => new LocalFileStore({ dir }).upload({ ...file(data), fileId, folderId })),
    );
    expect(await visible('race')).toEqual(['report.pdf']);
    expect((await readFile(join(dir, 'race', 'report.pdf'))).equals(data)).toBe(true);
    expect(new Set(results.map((r) => r.link)).size).toBe(1);
    expect(results.filter((r) => !r.alreadyExisted)).toHaveLength(1);
    expect(await store.findBySha256(folderId, file(data).sha256)).toEqual({ fileId, link: results[0]?.link });
  });

  it('gives files of the same name filed at the same moment a name each', async () => {
    const folderId = await store.ensureFolder(['race-names']);
    const [a, b] = await Promise.all(
      ['first', 'other'].map(async (data) =>
        new LocalFileStore({ dir }).upload({ ...file(data), fileId: await store.reserveFileId(), folderId }),
      ),
    );
    expect(await visible('race-names')).toEqual(['report (2).pdf', 'report.pdf']);
    expect(new Set([a?.link, b?.link]).size).toBe(2);
  });

  it('files identical bytes under a name that holds them already as that one file', async () => {
    const folderId = await store.ensureFolder(['same-bytes']);
    const first = await store.upload({ ...file('twice'), fileId: await store.reserveFileId(), folderId });
    const fileId = await store.reserveFileId();
    const second = await store.upload({ ...file('twice'), fileId, folderId });
    expect(second).toEqual({ fileId, link: first.link, alreadyExisted: true });
    expect(await visible('same-bytes')).toEqual(['report.pdf']);
  });

  it('files bytes deleted by hand again, and finds the new file by SHA-256', async () => {
    const folderId = await store.ensureFolder(['refiled']);
    const req = file('back again');
    const first = await store.upload({ ...req, fileId: await store.reserveFileId(), folderId });
    await unlink(fileURLToPath(first.link));
    const fileId = await store.reserveFileId();
    const second = await store.upload({ ...req, fileId, folderId });
    expect(second).toMatchObject({ fileId, alreadyExisted: false });
    expect(await visible('refiled')).toEqual(['report.pdf']);
    expect(await store.findBySha256(folderId, req.sha256)).toEqual({ fileId, link: second.link });
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

describe('LocalFileStore after a crash', () => {
  /** Where a process that died at `step` of filing `data` left its store, and the id it was filing. */
  async function crashed(step: 'writing' | 'linked' | 'recording' | 'recorded', data: string) {
    const root = await mkdtemp(join(dir, 'crashed-'));
    const before = new LocalFileStore({ dir: root });
    const folderId = await before.ensureFolder(['inbox']);
    const fileId = await before.reserveFileId();
    await before.upload({ ...file(data), fileId, folderId });
    // A filing that got through, taken back to the step the process died at (all before the last one,
    // the record's `sha256/` link).
    const meta = join(root, '.postroom');
    await rm(join(meta, 'sha256'), { recursive: true });
    const [record] = await readdir(join(meta, 'files'));
    if (step === 'recording') await truncate(join(meta, 'files', record ?? ''), 20);
    else if (step !== 'recorded') await rm(join(meta, 'files'), { recursive: true });
    if (step === 'writing') {
      await rm(join(root, 'inbox', 'report.pdf'));
      await writeFile(join(meta, 'tmp', `${fileId}.0a1b2c3d.part`), data.slice(0, 3));
    }
    return { root, folderId, fileId };
  }

  it.each([
    ['while writing the bytes', 'writing', false],
    ['right after linking them under their name', 'linked', true],
    ['half-way through writing the record', 'recording', true],
    ['after the record, before its link by SHA-256', 'recorded', true],
  ] as const)('files once when retried after a crash %s', async (_, step, alreadyExisted) => {
    const { root, folderId, fileId } = await crashed(step, 'survivor');
    const store = new LocalFileStore({ dir: root });
    const retry = await store.upload({ ...file('survivor'), fileId, folderId });
    expect(retry).toMatchObject({ fileId, alreadyExisted });
    expect(fileURLToPath(retry.link)).toBe(join(root, 'inbox', 'report.pdf'));
    expect(await readdir(join(root, 'inbox'))).toEqual(['report.pdf']);
    expect(await readFile(join(root, 'inbox', 'report.pdf'), 'utf8')).toBe('survivor');
    expect(await store.findBySha256(folderId, file('survivor').sha256)).toEqual({ fileId, link: retry.link });
    expect(await store.upload({ ...file('survivor'), fileId, folderId })).toEqual({
      ...retry,
      alreadyExisted: true,
    });
  });

  it('recognises its file under a numbered name, past a same-sized file of other bytes', async () => {
    const { root, folderId, fileId } = await crashed('linked', 'survivor');
    // The crashed attempt had found the name taken by other bytes of the same size.
    await rename(join(root, 'inbox', 'report.pdf'), join(root, 'inbox', 'report (2).pdf'));
    await writeFile(join(root, 'inbox', 'report.pdf'), 'SURVIVOR');
    const retry = await new LocalFileStore({ dir: root }).upload({ ...file('survivor'), fileId, folderId });
    expect(fileURLToPath(retry.link)).toBe(join(root, 'inbox', 'report (2).pdf'));
    expect(retry.alreadyExisted).toBe(true);
    expect(await readdir(join(root, 'inbox'))).toEqual(['report (2).pdf', 'report.pdf']);
    expect(await readFile(join(root, 'inbox', 'report.pdf'), 'utf8')).toBe('SURVIVOR');
  });

  it('finds files indexed by an earlier version (the index held only the id)', async () => {
    const { root, folderId, fileId } = await crashed('recorded', 'indexed before');
    const store = new LocalFileStore({ dir: root });
    const { link: url } = await store.upload({ ...file('indexed before'), fileId, folderId });
    const [entry] = await readdir(join(root, '.postroom', 'sha256'));
    const index = join(root, '.postroom', 'sha256', entry ?? '');
    await rm(index);
    await writeFile(index, JSON.stringify({ fileId }));
    expect(await store.findBySha256(folderId, file('indexed before').sha256)).toEqual({ fileId, link: url });
  });
});

/** A tmpfs on another device than the store, so that bytes cannot be hard-linked into a folder there. */
const otherDevice = await Promise.all([stat('/dev/shm'), stat(tmpdir())]).then(
  ([shm, tmp]) => shm.isDirectory() && shm.dev !== tmp.dev,
  () => false,
);

describe.skipIf(!otherDevice)('LocalFileStore where bytes cannot be hard-linked', () => {
  let away: string;
  let folderId: string;

  beforeAll(async () => {
    // A folder of the layout that is a mount of another device: linking from `.postroom/tmp` fails (EXDEV).
    away = await mkdtemp('/dev/shm/postroom-local-store-');
    await symlink(away, join(dir, 'away'));
    folderId = await store.ensureFolder(['away']);
  });

  afterAll(async () => {
    if (away) await rm(away, { recursive: true, force: true });
  });

  it('copies the bytes in, once, and never over another file', async () => {
    const fileId = await store.reserveFileId();
    const first = await store.upload({ ...file('copied'), fileId, folderId });
    expect(first.alreadyExisted).toBe(false);
    expect(await store.upload({ ...file('copied'), fileId, folderId })).toEqual({
      ...first,
      alreadyExisted: true,
    });
    const other = await store.upload({ ...file('COPIED'), fileId: await store.reserveFileId(), folderId });
    expect(await readdir(away)).toEqual(['report (2).pdf', 'report.pdf']);
    expect(fileURLToPath(other.link)).toBe(join(dir, 'away', 'report (2).pdf'));
    expect(await readFile(join(away, 'report.pdf'), 'utf8')).toBe('copied');
    expect(await store.findBySha256(folderId, file('copied').sha256)).toEqual({ fileId, link: first.link });
  });

  it('lets one process at a time copy an id, and breaks a stale lock', async () => {
    const fileId = await store.reserveFileId();
    const req = { ...file('wait', 'wait.pdf'), fileId, folderId };
    const lock = join(dir, '.postroom', 'locks', `${fileId}.lock`);
    await mkdir(join(dir, '.postroom', 'locks'), { recursive: true });
    await writeFile(lock, '999999\n');
    const err = await store.upload(req).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: 'STORAGE.BUSY' });
    const old = new Date(Date.now() - 3_600_000);
    await utimes(lock, old, old);
    expect((await store.upload(req)).alreadyExisted).toBe(false);
    expect((await readdir(away)).filter((n) => n.startsWith('wait'))).toEqual(['wait.pdf']);
  });

  it('leaves an id being copied by another process to it, never filing a second copy', async () => {
    const fileId = await store.reserveFileId();
    const data = randomBytes(64 * 1024);
    const req = { ...file(data, 'busy.pdf'), fileId, folderId };
    // Another process holds the id's lock and is half-way through its copy.
    const lock = join(dir, '.postroom', 'locks', `${fileId}.lock`);
    await mkdir(join(dir, '.postroom', 'locks'), { recursive: true });
    await writeFile(lock, '999999\n');
    await writeFile(join(away, 'busy.pdf'), data.subarray(0, 1000));
    await expect(store.upload(req)).rejects.toMatchObject({ code: 'STORAGE.BUSY' });
    expect((await readdir(away)).filter((n) => n.startsWith('busy'))).toEqual(['busy.pdf']);
    // It finishes; the redelivery finds the copy.
    await writeFile(join(away, 'busy.pdf'), data);
    await unlink(lock);
    expect(await store.upload(req)).toMatchObject({ fileId, alreadyExisted: true });
    expect((await readdir(away)).filter((n) => n.startsWith('busy'))).toEqual(['busy.pdf']);
  });

  it('files the same id once when two processes copy it at the same moment', async () => {
    const fileId = await store.reserveFileId();
    const req = { ...file(randomBytes(3 * 1024 * 1024), 'race.pdf'), fileId, folderId };
    const settled = await Promise.allSettled([1, 2].map(() => new LocalFileStore({ dir }).upload(req)));
    // The one that found the id being copied is told to come back (a redelivery), and then finds it.
    for (const s of settled)
      if (s.status === 'rejected') expect(s.reason).toMatchObject({ code: 'STORAGE.BUSY' });
    const retry = await store.upload(req);
    expect(retry.alreadyExisted).toBe(true);
    expect((await readdir(away)).filter((n) => n.startsWith('race'))).toEqual(['race.pdf']);
  });
});
