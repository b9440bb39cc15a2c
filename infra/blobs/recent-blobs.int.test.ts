import { createHash, randomBytes } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { createMysqlBlobStore } from './mysql-blob-store.js';
import { withRecentBlobs } from './recent-blobs.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('recent blobs held in memory, over the MySQL store', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('recent_blobs');
  });
  afterAll(async () => t?.drop());

  /** Removes a blob behind the cache's back, as retention in another process would. */
  const deleteRow = async (sha256: string) => {
    await t.db.deleteFrom('blob_chunks').where('blob_key', '=', sha256).execute();
    await t.db.deleteFrom('blobs').where('sha256', '=', sha256).execute();
  };

  it('serves a blob it stored from memory, the same bytes, without reading the database', async () => {
    const store = withRecentBlobs(createMysqlBlobStore(t.db));
    const bytes = randomBytes(10_240);
    const info = await store.put(bytes);
    await deleteRow(info.sha256); // proof that the reads below do not touch the database
    expect(await buffer(await store.open(info.sha256))).toEqual(bytes);
    expect(await store.read(info.sha256)).toEqual(bytes);
    expect(store.hits).toBe(2);
    // whether a blob exists is always the store's word
    expect(await store.stat(info.sha256)).toBeNull();
  });

  it('keeps what it read from the store, and reads again once the time is up', async () => {
    let clock = 1_000_000;
    const inner = createMysqlBlobStore(t.db);
    const store = withRecentBlobs(inner, { ttlMs: 60_000, now: () => clock });
    const bytes = randomBytes(5_000);
    const info = await inner.put(bytes);
    expect(await buffer(await store.open(info.sha256))).toEqual(bytes);
    expect(store.misses).toBe(1);
    expect(await buffer(await store.open(info.sha256))).toEqual(bytes);
    expect(store.hits).toBe(1);
    await deleteRow(info.sha256);
    clock += 61_000;
    await expect(store.open(info.sha256)).rejects.toMatchObject({ code: 'BLOB.NOT_FOUND' });
    expect(store.heldBytes).toBe(0);
  });

  it('holds at most its budget, oldest out first, and never a blob over the item limit', async () => {
    const store = withRecentBlobs(createMysqlBlobStore(t.db), { maxBytes: 25_000, maxItemBytes: 12_000 });
    const blobs = [randomBytes(10_000), randomBytes(10_000), randomBytes(10_000), randomBytes(20_000)];
    for (const b of blobs) await store.put(b);
    expect(store.heldBytes).toBe(20_000); // the 2nd and 3rd; the 1st was pushed out, the 4th is too big
    expect(await store.read(sha(blobs[2]!))).toEqual(blobs[2]);
    expect(await store.read(sha(blobs[1]!))).toEqual(blobs[1]);
    expect(store.hits).toBe(2);
    expect(await store.read(sha(blobs[0]!))).toEqual(blobs[0]);
    expect(await store.read(sha(blobs[3]!))).toEqual(blobs[3]);
    expect(store.misses).toBe(2);
    expect(store.heldBytes).toBeLessThanOrEqual(25_000);
  });

  it('keeps nothing of a damaged blob, and its reader gets the error', async () => {
    const inner = createMysqlBlobStore(t.db);
    const store = withRecentBlobs(inner);
    const bytes = randomBytes(4_000);
    const info = await inner.put(bytes);
    await t.db
      .updateTable('blob_chunks')
      .set({ data: randomBytes(4_000) })
      .where('blob_key', '=', info.sha256)
      .execute();
    await expect(buffer(await store.open(info.sha256))).rejects.toMatchObject({ code: 'BLOB.CORRUPT' });
    expect(store.heldBytes).toBe(0);
    await expect(store.read(info.sha256)).rejects.toMatchObject({ code: 'BLOB.CORRUPT' });
  });

  it('holds a copy of an attachment cut from a larger buffer, not the larger buffer', async () => {
    const store = withRecentBlobs(createMysqlBlobStore(t.db));
    const source = randomBytes(256 * 1024); // a message's source
    const attachment = source.subarray(1000, 3000);
    const expected = Buffer.from(attachment);
    const info = await store.put(attachment);
    source.fill(0); // the source is reused or dropped: what is held must not depend on it
    expect(await store.read(info.sha256)).toEqual(expected);
    expect(store.heldBytes).toBe(2000);
  });
});
