import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlobStore } from '../../infra/blobs/blob-store.js';
import { createMysqlBlobStore } from '../../infra/blobs/mysql-blob-store.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { uidSet } from './mailbox-sync.js';
import { createStagedBlobStore } from './staged-blobs.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const pieces = (b: Buffer, n: number) =>
  Readable.from(Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n)));

describe('staged blob store', () => {
  let t: TestDatabase;
  let store: BlobStore;

  beforeAll(async () => {
    t = await createTestDatabase('staged');
    store = createMysqlBlobStore(t.db);
  });
  afterAll(async () => t?.drop());

  it('holds small blobs back until the email transaction, and writes nothing if it rolls back', async () => {
    const staged = createStagedBlobStore(store, { perBlob: 1024, total: 4096 });
    const small = Buffer.from('a small attachment '.repeat(20));
    const info = await staged.put(pieces(small, 7), { maxBytes: 10_000 });
    expect(info).toEqual({ sha256: sha(small), size: small.length });
    expect(staged.stagedCount).toBe(1);
    expect(await store.stat(info.sha256)).toBeNull();

    await expect(
      t.db.transaction().execute(async (trx) => {
        await staged.writeStaged(trx);
        throw new Error('the email failed');
      }),
    ).rejects.toThrow('the email failed');
    expect(await store.stat(info.sha256)).toBeNull();

    await t.db.transaction().execute((trx) => staged.writeStaged(trx));
    expect(await store.read(info.sha256)).toEqual(small);
  });

  it('streams a blob over the limit to the store at once, its first bytes included', async () => {
    const staged = createStagedBlobStore(store, { perBlob: 1024, total: 4096 });
    const big = Buffer.alloc(5000, 7);
    const info = await staged.put(pieces(big, 300));
    expect(info).toEqual({ sha256: sha(big), size: big.length });
    expect(staged.stagedCount).toBe(0);
    expect(await store.read(info.sha256)).toEqual(big);
    // The store's own limit still applies to what streams through.
    await expect(staged.put(pieces(Buffer.alloc(3000, 1), 500), { maxBytes: 2000 })).rejects.toMatchObject({
      code: 'BLOB.TOO_LARGE',
    });
  });

  it('stops holding back once the per-message total is reached', async () => {
    const staged = createStagedBlobStore(store, { perBlob: 1024, total: 1500 });
    const a = Buffer.alloc(1000, 1);
    const b = Buffer.alloc(1000, 2);
    await staged.put(pieces(a, 100));
    await staged.put(pieces(b, 100));
    expect(staged.stagedCount).toBe(1);
    expect(await store.stat(sha(a))).toBeNull();
    expect(await store.stat(sha(b))).toEqual({ sha256: sha(b), size: 1000 });
  });
});

describe('uidSet', () => {
  it('compacts distinct UIDs into ranges', () => {
    expect(uidSet([9, 3, 4, 5, 7, 12, 13, 5])).toBe('3:5,7,9,12:13');
    expect(uidSet([42])).toBe('42');
  });
});
