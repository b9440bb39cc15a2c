import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../errors.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { FakeDrive, FOLDER_MIME, guardEgress, MY_DRIVE_ROOT } from '../../test/fake-drive.js';
import { createDriveAuth } from './drive-auth.js';
import { DriveFileStore, type DriveFileStoreOptions } from './drive-file-store.js';
import type { UploadRequest } from './file-store.js';

let fake: FakeDrive;
let db: TestDatabase;
let egress: ReturnType<typeof guardEgress>;

beforeAll(async () => {
  egress = guardEgress();
  fake = await FakeDrive.start();
  db = await createTestDatabase('drive');
});

afterAll(async () => {
  await fake?.close();
  await db?.drop();
  egress?.dispose();
});

/** A store as a separate process would have it: its own auth client, caches and claim owner name. */
async function newStore(options: Partial<DriveFileStoreOptions> = {}): Promise<DriveFileStore> {
  const auth = await createDriveAuth({ driveMode: 'access-token', DRIVE_ACCESS_TOKEN: 'fake-drive-token' });
  return new DriveFileStore({
    auth,
    db: db.db,
    rootUrl: fake.url,
    retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 100 },
    ...options,
  });
}

function bytesOf(
  text: string,
  extra: Partial<UploadRequest> = {},
): Omit<UploadRequest, 'fileId' | 'folderId'> {
  const data = Buffer.from(text);
  return {
    name: 'note.txt',
    mimeType: 'text/plain',
    size: data.length,
    sha256: createHash('sha256').update(data).digest('hex'),
    appProperties: { emailId: 'e1', attachmentId: 'a1' },
    open: () => Readable.from([data]),
    ...extra,
  };
}

const unique = () => `t-${randomBytes(4).toString('hex')}`;

describe('DriveFileStore folders', () => {
  it('creates missing folders level by level under the root and caches them', async () => {
    const store = await newStore();
    const top = unique();
    const id = await store.ensureFolder([top, '11', 'ana@example.com']);
    const level1 = fake.foldersNamed(MY_DRIVE_ROOT, top);
    expect(level1).toHaveLength(1);
    const level2 = fake.foldersNamed(level1[0]!.id, '11');
    expect(level2).toHaveLength(1);
    const leaf = fake.foldersNamed(level2[0]!.id, 'ana@example.com');
    expect(leaf.map((f) => f.id)).toEqual([id]);
    expect(leaf[0]!.mimeType).toBe(FOLDER_MIME);

    const before = fake.requests.length;
    expect(await store.ensureFolder([top, '11', 'ana@example.com'])).toBe(id);
    expect(fake.requests.length).toBe(before);
    expect(await store.ensureFolder([])).toBe('root');
  });

  it('creates one folder when several processes ask for the same path at once', async () => {
    const stores = await Promise.all([newStore(), newStore(), newStore(), newStore()]);
    const path = [unique(), 'same', 'path'];
    const before = fake.requests.length;
    const ids = await Promise.all(stores.flatMap((s) => [s.ensureFolder(path), s.ensureFolder(path)]));
    expect(new Set(ids).size).toBe(1);
    const top = fake.foldersNamed(MY_DRIVE_ROOT, path[0]!);
    expect(top).toHaveLength(1);
    const mid = fake.foldersNamed(top[0]!.id, 'same');
    expect(mid).toHaveLength(1);
    expect(fake.foldersNamed(mid[0]!.id, 'path').map((f) => f.id)).toEqual([ids[0]]);
    // The losers never even tried: one folder create per level, none refused.
    const creates = fake.requests
      .slice(before)
      .filter((r) => r.method === 'POST' && r.path === '/drive/v3/files');
    expect(creates.map((r) => r.status)).toEqual([200, 200, 200]);
  });

  it('adopts a folder of that name already in Drive instead of making a second one', async () => {
    const name = unique();
    const existing = fake.seed({ name, parents: ['root'], mimeType: FOLDER_MIME });
    const store = await newStore();
    expect(await store.ensureFolder([name])).toBe(existing.id);
    expect(fake.foldersNamed(MY_DRIVE_ROOT, name)).toHaveLength(1);
  });

  it('finishes the claim of a process that died before creating the folder, with the id it reserved', async () => {
    const name = unique();
    const reserved = await (await newStore()).reserveFileId();
    await insertStaleClaim(name, reserved);
    const id = await (await newStore({ folderClaimTimeoutMs: 1_000 })).ensureFolder([name]);
    expect(id).toBe(reserved);
    expect(fake.foldersNamed(MY_DRIVE_ROOT, name).map((f) => f.id)).toEqual([reserved]);
  });

  it('finishes the claim of a process that died after creating the folder, without a second one', async () => {
    const name = unique();
    const first = await newStore();
    const reserved = await first.reserveFileId();
    await insertStaleClaim(name, reserved);
    // The dead process got as far as Drive: the folder exists with the reserved id.
    fake.seed({ id: reserved, name, parents: ['root'], mimeType: FOLDER_MIME });
    const id = await (await newStore({ folderClaimTimeoutMs: 1_000 })).ensureFolder([name]);
    expect(id).toBe(reserved);
    expect(fake.foldersNamed(MY_DRIVE_ROOT, name)).toHaveLength(1);
  });

  it('waits for a live claim instead of creating the folder itself', async () => {
    const name = unique();
    const store = await newStore({ folderClaimTimeoutMs: 60_000 });
    const reserved = await store.reserveFileId();
    await db.db
      .insertInto('drive_folders')
      .values({
        ...claimKey(name),
        folder_id: reserved,
        status: 'creating',
        claimed_by: 'other',
        claimed_at: new Date(),
        ready_at: null,
      })
      .execute();
    const waiting = store.ensureFolder([name]);
    await new Promise((r) => setTimeout(r, 300));
    fake.seed({ id: reserved, name, parents: ['root'], mimeType: FOLDER_MIME });
    await db.db.updateTable('drive_folders').set({ status: 'ready' }).where('name', '=', name).execute();
    expect(await waiting).toBe(reserved);
    expect(fake.foldersNamed(MY_DRIVE_ROOT, name)).toHaveLength(1);
  });
});

describe('DriveFileStore uploads', () => {
  it('uploads a small file with multipart, under the reserved id, with its app properties', async () => {
    const store = await newStore();
    const folderId = await store.ensureFolder([unique()]);
    const fileId = await store.reserveFileId();
    const req = bytesOf('hello drive', { name: 'hello.txt' });
    const result = await store.upload({ ...req, fileId, folderId });
    expect(result).toEqual({
      fileId,
      link: `https://drive.google.com/file/d/${fileId}/view?usp=drivesdk`,
      alreadyExisted: false,
    });
    const file = fake.file(fileId)!;
    expect(file.content?.toString()).toBe('hello drive');
    expect(file).toMatchObject({ name: 'hello.txt', mimeType: 'text/plain', parents: [folderId] });
    expect(file.appProperties).toEqual({ emailId: 'e1', attachmentId: 'a1', sha256: req.sha256 });
    const uploads = fake.requests.filter(
      (r) => r.path === '/upload/drive/v3/files' && r.query['uploadType'] === 'multipart',
    );
    expect(uploads.at(-1)?.query).toMatchObject({ supportsAllDrives: 'true' });
  });

  it('treats a second upload with the same id as already there and files nothing twice', async () => {
    const store = await newStore();
    const folderId = await store.ensureFolder([unique()]);
    const fileId = await store.reserveFileId();
    const first = await store.upload({ ...bytesOf('once'), fileId, folderId });
    // A redelivery after a crash between upload and ack, in another process.
    const again = await (await newStore()).upload({ ...bytesOf('once'), fileId, folderId });
    expect(again).toEqual({ ...first, alreadyExisted: true });
    expect(fake.filesIn(folderId)).toHaveLength(1);
  });

  it('recovers when Drive filed the bytes but the answer was lost', async () => {
    const store = await newStore();
    const folderId = await store.ensureFolder([unique()]);
    const fileId = await store.reserveFileId();
    fake.failNext({ method: 'POST', path: '/upload/drive/v3/files', status: 503, lose: true });
    const result = await store.upload({ ...bytesOf('lost answer'), fileId, folderId });
    expect(result).toMatchObject({ fileId, alreadyExisted: true });
    expect(fake.filesIn(folderId)).toHaveLength(1);
    expect(fake.content(fileId).toString()).toBe('lost answer');
  });

  it('refuses to take over a reserved id that holds other bytes', async () => {
    const store = await newStore();
    const folderId = await store.ensureFolder([unique()]);
    const fileId = await store.reserveFileId();
    await store.upload({ ...bytesOf('first bytes'), fileId, folderId });
    await expect(store.upload({ ...bytesOf('other bytes'), fileId, folderId })).rejects.toMatchObject({
      code: 'DRIVE.ID_CONFLICT',
    });
  });

  it('finds a file by SHA-256 in its folder only, and not when its bytes changed since', async () => {
    const store = await newStore();
    const folderId = await store.ensureFolder([unique()]);
    const other = await store.ensureFolder([unique()]);
    const req = bytesOf('find me');
    const fileId = await store.reserveFileId();
    const { link } = await store.upload({ ...req, fileId, folderId });
    expect(await store.findBySha256(folderId, req.sha256)).toEqual({ fileId, link });
    expect(await store.findBySha256(other, req.sha256)).toBeNull();
    expect(await store.findBySha256(folderId, 'f'.repeat(64))).toBeNull();
    const edited = fake.seed({
      name: 'x',
      parents: [other],
      content: Buffer.from('edited'),
      appProperties: { sha256: req.sha256 },
    });
    expect(edited.id).toBeTruthy();
    expect(await store.findBySha256(other, req.sha256)).toBeNull();
  });

  it('works in a shared drive (supportsAllDrives on every call)', async () => {
    const sharedDrive = fake.addSharedDrive();
    const store = await newStore({ rootFolderId: sharedDrive });
    const folderId = await store.ensureFolder(['2026', 'shared']);
    const fileId = await store.reserveFileId();
    const req = bytesOf('in a shared drive');
    await store.upload({ ...req, fileId, folderId });
    expect(fake.file(fileId)?.driveId).toBe(sharedDrive);
    expect(await store.findBySha256(folderId, req.sha256)).toMatchObject({ fileId });
    expect(await (await newStore({ rootFolderId: sharedDrive })).ensureFolder(['2026', 'shared'])).toBe(
      folderId,
    );
  });
});

describe('DriveFileStore listing and deleting by app property', () => {
  it('lists every page of the folder files with the property, and nothing else; deletes one for good', async () => {
    const store = await newStore();
    const folder = fake.seed({ name: unique(), parents: ['root'], mimeType: FOLDER_MIME });
    const other = fake.seed({ name: unique(), parents: ['root'], mimeType: FOLDER_MIME });
    const mine = { postroomBackup: '1' };
    // More than one page of 1000.
    for (let i = 0; i < 1002; i++)
      fake.seed({ name: `b-${String(i).padStart(4, '0')}`, parents: [folder.id], appProperties: mine });
    fake.seed({ name: 'a person’s file', parents: [folder.id] });
    fake.seed({ name: 'other value', parents: [folder.id], appProperties: { postroomBackup: '0' } });
    fake.seed({ name: 'trashed', parents: [folder.id], appProperties: mine, trashed: true });
    fake.seed({ name: 'elsewhere', parents: [other.id], appProperties: mine });

    const listed = await store.listByAppProperty(folder.id, 'postroomBackup', '1');
    expect(listed).toHaveLength(1002);
    expect(new Set(listed.map((f) => f.name)).size).toBe(1002);
    expect(listed.every((f) => f.name.startsWith('b-') && f.appProperties['postroomBackup'] === '1')).toBe(
      true,
    );
    expect(listed[0]?.createdTime).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(fake.requestsTo('GET', '/drive/v3/files').at(-1)?.query['pageToken']).toBe('1000');

    await store.deleteFile(listed[0]!.fileId);
    expect(fake.file(listed[0]!.fileId)).toBeUndefined();
    await store.deleteFile(listed[0]!.fileId); // already gone: not an error
    expect(await store.listByAppProperty(folder.id, 'postroomBackup', '1')).toHaveLength(1001);
  });
});

describe('DriveFileStore failures', () => {
  it('retries 429, 403 rateLimitExceeded and 403 userRateLimitExceeded, then succeeds', async () => {
    const store = await newStore();
    const folderId = await store.ensureFolder([unique()]);
    const fileId = await store.reserveFileId();
    const path = '/upload/drive/v3/files';
    fake.failNext({ path, status: 429, retryAfterSeconds: 0 });
    fake.failNext({ path, status: 403, reason: 'rateLimitExceeded' });
    fake.failNext({ path, status: 403, reason: 'userRateLimitExceeded' });
    const before = fake.requestsTo('POST', path).length;
    await store.upload({ ...bytesOf('patience'), fileId, folderId });
    expect(
      fake
        .requestsTo('POST', path)
        .slice(before)
        .map((r) => r.status),
    ).toEqual([429, 403, 403, 200]);
    expect(fake.filesIn(folderId)).toHaveLength(1);
  });

  it('leaves retrying to its own budget, not to the client library (gaxios retries GETs by default)', async () => {
    const store = await newStore({ retry: { attempts: 1 } });
    fake.failNext({ path: '/drive/v3/files/generateIds', status: 500, times: 3 });
    const before = fake.requestsTo('GET', '/drive/v3/files/generateIds').length;
    await expect(store.reserveFileId()).rejects.toMatchObject({ code: 'DRIVE.UNAVAILABLE' });
    expect(fake.requestsTo('GET', '/drive/v3/files/generateIds').length - before).toBe(1);
    fake.clearFaults();
  });

  it('retries generateIds and folder creation too', async () => {
    const store = await newStore();
    fake.failNext({ path: '/drive/v3/files/generateIds', status: 500 });
    fake.failNext({ method: 'POST', path: '/drive/v3/files', status: 503 });
    const id = await store.ensureFolder([unique()]);
    expect(fake.file(id)?.mimeType).toBe(FOLDER_MIME);
  });

  it('gives up after its budget with a RetryableError for the runner', async () => {
    const store = await newStore();
    const folderId = await store.ensureFolder([unique()]);
    const fileId = await store.reserveFileId();
    fake.failNext({ path: '/upload/drive/v3/files', status: 429, times: 4 });
    const err = await store.upload({ ...bytesOf('later'), fileId, folderId }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: 'DRIVE.RATE_LIMITED' });
    fake.failNext({ path: '/upload/drive/v3/files', status: 500, times: 4 });
    await expect(store.upload({ ...bytesOf('later'), fileId, folderId })).rejects.toMatchObject({
      code: 'DRIVE.UNAVAILABLE',
    });
    expect(fake.filesIn(folderId)).toHaveLength(0);
  });

  it('fails at once, permanently, on quota and permission errors, and says when the folder is gone', async () => {
    const store = await newStore();
    const folderId = await store.ensureFolder([unique()]);
    const fileId = await store.reserveFileId();
    const path = '/upload/drive/v3/files';
    const cases: [number, string, string][] = [
      [403, 'storageQuotaExceeded', 'DRIVE.QUOTA_EXCEEDED'],
      [403, 'insufficientFilePermissions', 'DRIVE.FORBIDDEN'],
      [400, 'badRequest', 'DRIVE.BAD_REQUEST'],
    ];
    for (const [status, reason, code] of cases) {
      fake.failNext({ path, status, reason });
      const before = fake.requestsTo('POST', path).length;
      const err = await store.upload({ ...bytesOf('no'), fileId, folderId }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PermanentError);
      expect(err).toMatchObject({ code });
      expect(fake.requestsTo('POST', path).length - before).toBe(1);
    }
    await expect(
      store.upload({ ...bytesOf('no'), fileId, folderId: 'no-such-folder' }),
    ).rejects.toMatchObject({
      code: 'DRIVE.FOLDER_GONE',
      retryable: true,
      cause: { code: 'DRIVE.NOT_FOUND' },
    });
  });

  it('reports a refused token as DRIVE.UNAUTHORIZED', async () => {
    const auth = await createDriveAuth({ driveMode: 'access-token', DRIVE_ACCESS_TOKEN: 'expired' });
    const store = new DriveFileStore({ auth, db: db.db, rootUrl: fake.url });
    await expect(store.reserveFileId()).rejects.toMatchObject({ code: 'DRIVE.UNAUTHORIZED' });
  });

  it('sent nothing to Google: every request of this file reached the fake', () => {
    expect(egress.blocked).toEqual([]);
    expect(fake.requests.filter((r) => r.path === '/upload/drive/v3/files').length).toBeGreaterThan(5);
  });
});

function claimKey(name: string) {
  return { parent_id: 'root', name_hash: createHash('sha256').update(name).digest('hex'), name };
}

async function insertStaleClaim(name: string, folderId: string): Promise<void> {
  await db.db
    .insertInto('drive_folders')
    .values({
      ...claimKey(name),
      folder_id: folderId,
      status: 'creating',
      claimed_by: 'dead-host:1:abc',
      claimed_at: new Date(Date.now() - 3_600_000),
      ready_at: null,
    })
    .execute();
}
