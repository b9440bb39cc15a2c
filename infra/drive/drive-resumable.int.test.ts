import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentError } from '../errors.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { FakeDrive, guardEgress } from '../../test/fake-drive.js';
import { createDriveAuth } from './drive-auth.js';
import { DriveFileStore } from './drive-file-store.js';
import type { UploadRequest } from './file-store.js';

const MiB = 1024 * 1024;
const UPLOAD = '/upload/drive/v3/files';

let fake: FakeDrive;
let db: TestDatabase;
let egress: ReturnType<typeof guardEgress>;
let big: Buffer;
let bigSha: string;

beforeAll(async () => {
  egress = guardEgress();
  // Served under a path, as behind a proxy: a client that drops the path from rootUrl gets 404s.
  fake = await FakeDrive.start({ basePath: '/drive-proxy/' });
  db = await createTestDatabase('resumable');
  big = randomBytes(12 * MiB);
  bigSha = createHash('sha256').update(big).digest('hex');
});

afterAll(async () => {
  await fake?.close();
  await db?.drop();
  egress?.dispose();
});

async function newStore(): Promise<DriveFileStore> {
  const auth = await createDriveAuth({ driveMode: 'access-token', DRIVE_ACCESS_TOKEN: 'fake-drive-token' });
  return new DriveFileStore({
    auth,
    db: db.db,
    rootUrl: fake.url,
    chunkBytes: 4 * MiB,
    retry: { attempts: 4, baseDelayMs: 5, maxDelayMs: 100 },
  });
}

/** The 12 MiB file, streamed in 64 KiB pieces like a blob read back from the store; counts its opens. */
function bigFile(counter: { opens: number }): Omit<UploadRequest, 'fileId' | 'folderId'> {
  return {
    name: 'scan.pdf',
    mimeType: 'application/pdf',
    size: big.length,
    sha256: bigSha,
    open: () => {
      counter.opens++;
      return Readable.from(
        (function* () {
          for (let i = 0; i < big.length; i += 64 * 1024) yield big.subarray(i, i + 64 * 1024);
        })(),
      );
    },
  };
}

async function target(store: DriveFileStore): Promise<{ folderId: string; fileId: string }> {
  const folderId = await store.ensureFolder([`r-${randomBytes(4).toString('hex')}`]);
  return { folderId, fileId: await store.reserveFileId() };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('resumable uploads', () => {
  it('uploads 12 MiB in chunks byte-exact, resuming after a 503 that cut a chunk short', async () => {
    const store = await newStore();
    const { folderId, fileId } = await target(store);
    const counter = { opens: 0 };
    // The second chunk: Drive keeps 1 MiB and a bit of it, then fails.
    fake.failNext({ method: 'PUT', path: UPLOAD, skip: 1, status: 503, acceptBytes: MiB + 12_345 });
    const before = fake.requests.length;
    const result = await store.upload({ ...bigFile(counter), fileId, folderId });
    expect(result).toMatchObject({ fileId, alreadyExisted: false });
    expect(sha(fake.content(fileId))).toBe(bigSha);
    expect(fake.filesIn(folderId)).toHaveLength(1);

    const log = fake.requests.slice(before);
    const session = log.filter((r) => r.method === 'POST' && r.path === UPLOAD);
    expect(session.map((r) => [r.query['uploadType'], r.query['supportsAllDrives']])).toEqual([
      ['resumable', 'true'],
    ]);
    const puts = log.filter((r) => r.method === 'PUT');
    // chunk 1 (308), chunk 2 (503), status query (308), the rest from where Drive stood (308, 200).
    expect(puts.map((r) => r.status)).toEqual([308, 503, 308, 308, 200]);
    expect(puts[2]?.bytes).toBe(0);
    // Resumed from Drive's offset, not from zero, and from memory: the source was opened once.
    const sent = puts.reduce((n, r) => n + r.bytes, 0);
    expect(sent).toBe(big.length + (4 * MiB - (MiB + 12_345)));
    expect(counter.opens).toBe(1);
  });

  it('resumes after the connection drops mid-chunk', async () => {
    const store = await newStore();
    const { folderId, fileId } = await target(store);
    fake.failNext({ method: 'PUT', path: UPLOAD, skip: 2, reset: true });
    await store.upload({ ...bigFile({ opens: 0 }), fileId, folderId });
    expect(sha(fake.content(fileId))).toBe(bigSha);
  });

  it('starts over in a new session when the session has expired', async () => {
    const store = await newStore();
    const { folderId, fileId } = await target(store);
    const counter = { opens: 0 };
    fake.failNext({ method: 'PUT', path: UPLOAD, skip: 1, status: 404 });
    await store.upload({ ...bigFile(counter), fileId, folderId });
    expect(sha(fake.content(fileId))).toBe(bigSha);
    expect(counter.opens).toBe(2);
    expect(fake.filesIn(folderId)).toHaveLength(1);
  });

  it('asks the session when the last answer is lost, and finds the file complete', async () => {
    const store = await newStore();
    const { folderId, fileId } = await target(store);
    fake.failNext({ method: 'PUT', path: UPLOAD, skip: 2, status: 502, lose: true });
    const result = await store.upload({ ...bigFile({ opens: 0 }), fileId, folderId });
    expect(result).toMatchObject({ fileId, alreadyExisted: false });
    expect(sha(fake.content(fileId))).toBe(bigSha);
  });

  it('retries rate limits on the session start and on chunks', async () => {
    const store = await newStore();
    const { folderId, fileId } = await target(store);
    fake.failNext({ method: 'POST', path: UPLOAD, status: 429 });
    fake.failNext({ method: 'PUT', path: UPLOAD, status: 403, reason: 'userRateLimitExceeded' });
    await store.upload({ ...bigFile({ opens: 0 }), fileId, folderId });
    expect(sha(fake.content(fileId))).toBe(bigSha);
  });

  it('finds a finished upload already there on a retry, without sending the bytes again', async () => {
    const store = await newStore();
    const { folderId, fileId } = await target(store);
    const first = await store.upload({ ...bigFile({ opens: 0 }), fileId, folderId });
    const before = fake.requests.length;
    const counter = { opens: 0 };
    const again = await (await newStore()).upload({ ...bigFile(counter), fileId, folderId });
    expect(again).toEqual({ ...first, alreadyExisted: true });
    expect(fake.requests.slice(before).filter((r) => r.method === 'PUT')).toEqual([]);
    expect(counter.opens).toBe(0);
    expect(fake.filesIn(folderId)).toHaveLength(1);
  });

  it('refuses bytes that end before the announced size', async () => {
    const store = await newStore();
    const { folderId, fileId } = await target(store);
    const short = { ...bigFile({ opens: 0 }), size: big.length + 100 };
    await expect(store.upload({ ...short, fileId, folderId })).rejects.toMatchObject({
      code: 'DRIVE.SOURCE_SIZE_MISMATCH',
    });
    expect(fake.file(fileId)).toBeUndefined();
  });

  it('refuses bytes that go on past the announced size, before the last chunk makes the file', async () => {
    const store = await newStore();
    const { folderId, fileId } = await target(store);
    const long = { ...bigFile({ opens: 0 }), size: big.length - 100 };
    await expect(store.upload({ ...long, fileId, folderId })).rejects.toMatchObject({
      code: 'DRIVE.SOURCE_SIZE_MISMATCH',
    });
    expect(fake.file(fileId)).toBeUndefined();
  });

  it('stops before the last chunk when the source fails its own check at its end', async () => {
    const store = await newStore();
    const { folderId, fileId } = await target(store);
    const corrupt = new PermanentError('BLOB.CORRUPT', 'content does not match its SHA-256');
    const file = bigFile({ opens: 0 });
    // Like the blob store: every byte, then an error instead of the end.
    const open = () =>
      Readable.from(
        (async function* () {
          for await (const piece of file.open() as Readable) yield piece as Buffer;
          throw corrupt;
        })(),
      );
    await expect(store.upload({ ...file, open, fileId, folderId })).rejects.toBe(corrupt);
    expect(fake.file(fileId)).toBeUndefined();
  });

  it('kept every call under the proxy path and away from Google', () => {
    expect(egress.blocked).toEqual([]);
    // A request outside /drive-proxy/ would have been answered 404 (only the injected one is expected).
    expect(fake.requests.filter((r) => r.status === 404).map((r) => r.path)).toEqual([UPLOAD]);
  });
});
