import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobRowCounts, createTestDatabase, type TestDatabase } from '../../test/db.js';
import { deterministicBytes, digestStream } from '../../test/mail-corpus.js';
import { PermanentError } from '../errors.js';
import type { BlobStore } from './blob-store.js';
import { createMysqlBlobStore, sweepTemporaryChunks, uuidV7 } from './mysql-blob-store.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('MySQL blob store', () => {
  let t: TestDatabase;
  let store: BlobStore;
  const counts = () => blobRowCounts(t.db);

  beforeAll(async () => {
    t = await createTestDatabase('blobs');
    store = createMysqlBlobStore(t.db);
  });
  afterAll(async () => t?.drop());

  it('stores a buffer and a stream and gives the same bytes back, in chunks of the configured size', async () => {
    const small = createMysqlBlobStore(t.db, { chunkSize: 10 });
    const bytes = Buffer.from('hello, postroom: content-addressed bytes!');
    const info = await small.put(Readable.from([bytes.subarray(0, 7), bytes.subarray(7)]));
    expect(info).toEqual({ sha256: sha(bytes), size: bytes.length });
    expect(await small.read(info.sha256)).toEqual(bytes);
    expect(await store.stat(info.sha256)).toEqual(info);
    const rows = await t.db
      .selectFrom('blob_chunks')
      .select(['seq', 'data'])
      .where('blob_key', '=', info.sha256)
      .orderBy('seq')
      .execute();
    expect(rows.map((r) => r.data.length)).toEqual([10, 10, 10, 10, 1]);
    const blob = await t.db
      .selectFrom('blobs')
      .selectAll()
      .where('sha256', '=', info.sha256)
      .executeTakeFirstOrThrow();
    expect(blob.chunk_count).toBe(5);

    const fromBuffer = await store.put(Buffer.from('a plain buffer'));
    expect((await store.read(fromBuffer.sha256)).toString()).toBe('a plain buffer');
  });

  it('stores an empty input as an empty blob', async () => {
    const info = await store.put(Readable.from([]));
    expect(info).toEqual({ sha256: sha(Buffer.alloc(0)), size: 0 });
    expect((await store.read(info.sha256)).length).toBe(0);
  });

  it('stores identical bytes once, whatever the chunking of the input', async () => {
    const bytes = Buffer.from('the same attachment, mailed twice '.repeat(100));
    const before = await counts();
    const a = await store.put(bytes);
    const b = await store.put(Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]));
    expect(b).toEqual(a);
    const after = await counts();
    expect(after.blobs - before.blobs).toBe(1);
    expect(after.chunks - before.chunks).toBe(1);
    expect(after.tmp).toBe(0);
  });

  it('streams 20 MiB in and back out byte-exact, one 1 MiB row per chunk', async () => {
    const expected = await digestStream(deterministicBytes(20 * MiB, 42));
    const info = await store.put(deterministicBytes(20 * MiB, 42));
    expect(info).toEqual(expected);
    const rows = await t.db
      .selectFrom('blob_chunks')
      .select((e) => [e.fn.countAll().as('n'), e.fn.max(e.fn('length', ['data'])).as('biggest')])
      .where('blob_key', '=', info.sha256)
      .executeTakeFirstOrThrow();
    expect(Number(rows.n)).toBe(20);
    expect(Number(rows.biggest)).toBe(MiB);
    expect(await digestStream(await store.open(info.sha256))).toEqual(expected);
  });

  it('reads lazily: a paused reader has fetched at most a chunk or two', async () => {
    const small = createMysqlBlobStore(t.db, { chunkSize: 64 * 1024 });
    const info = await small.put(deterministicBytes(2 * MiB, 7));
    const stream = await small.open(info.sha256);
    const first = await new Promise<Buffer>((resolve) => stream.once('data', resolve));
    stream.pause();
    await new Promise((r) => setTimeout(r, 200));
    expect(first.length).toBe(64 * 1024);
    expect(stream.readableLength).toBeLessThanOrEqual(2 * 64 * 1024);
    stream.destroy();
  });

  it('refuses input over maxBytes with BLOB.TOO_LARGE and keeps nothing', async () => {
    const before = await counts();
    const small = createMysqlBlobStore(t.db, { chunkSize: 1024 });
    const err = await small
      .put(deterministicBytes(100 * 1024, 3, 4096), { maxBytes: 50_000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('BLOB.TOO_LARGE');
    expect(await counts()).toEqual(before);
    // exactly at the limit is accepted
    const ok = await small.put(Buffer.alloc(50_000, 1), { maxBytes: 50_000 });
    expect(ok.size).toBe(50_000);
  });

  it('keeps one copy when the same bytes are stored concurrently', async () => {
    const small = createMysqlBlobStore(t.db, { chunkSize: 16 * 1024 });
    const before = await counts();
    const results = await Promise.all(
      Array.from({ length: 6 }, () => small.put(deterministicBytes(200 * 1024, 99, 8192))),
    );
    expect(new Set(results.map((r) => r.sha256)).size).toBe(1);
    const after = await counts();
    expect(after.blobs - before.blobs).toBe(1);
    expect(after.chunks - before.chunks).toBe(13);
    expect(after.tmp).toBe(0);
    expect(await digestStream(await small.open(results[0]!.sha256))).toEqual(results[0]);
  });

  it("writes a buffer inside the caller's transaction: committed with it, gone with a rollback", async () => {
    const small = createMysqlBlobStore(t.db, { chunkSize: 10 });
    const bytes = Buffer.from('written with the email, in its transaction');
    const before = await counts();
    await expect(
      t.db.transaction().execute(async (trx) => {
        await small.put(bytes, { transaction: trx });
        throw new Error('the email failed');
      }),
    ).rejects.toThrow('the email failed');
    expect(await store.stat(sha(bytes))).toBeNull();
    expect(await counts()).toEqual(before);

    const info = await t.db.transaction().execute((trx) => small.put(bytes, { transaction: trx }));
    expect(info).toEqual({ sha256: sha(bytes), size: bytes.length });
    expect(await store.read(info.sha256)).toEqual(bytes);
    // No temporary key, chunks straight under the hash, the configured chunk size.
    expect((await counts()).chunks - before.chunks).toBe(5);
    expect((await counts()).tmp).toBe(0);

    // The same bytes again, in a transaction or not: one blob, no new chunk.
    await t.db.transaction().execute((trx) => store.put(bytes, { transaction: trx }));
    await store.put(bytes);
    expect((await counts()).blobs - before.blobs).toBe(1);
    expect((await counts()).chunks - before.chunks).toBe(5);

    await expect(
      t.db.transaction().execute((trx) => store.put(Buffer.alloc(11), { transaction: trx, maxBytes: 10 })),
    ).rejects.toMatchObject({ code: 'BLOB.TOO_LARGE' });
    await expect(
      t.db.transaction().execute((trx) => store.put(Readable.from([bytes]), { transaction: trx })),
    ).rejects.toThrow(TypeError);
  });

  it('rejects a missing blob with BLOB.NOT_FOUND and reports it absent', async () => {
    const missing = sha(Buffer.from('never stored'));
    await expect(store.open(missing)).rejects.toMatchObject({ code: 'BLOB.NOT_FOUND' });
    await expect(store.open('../../etc/passwd')).rejects.toMatchObject({ code: 'BLOB.NOT_FOUND' });
    expect(await store.stat(missing)).toBeNull();
  });

  it('fails the read stream when a chunk has gone missing instead of returning short bytes', async () => {
    const small = createMysqlBlobStore(t.db, { chunkSize: 8 });
    const info = await small.put(Buffer.from('0123456789abcdefXYZ'));
    await t.db.deleteFrom('blob_chunks').where('blob_key', '=', info.sha256).where('seq', '=', 1).execute();
    await expect(small.read(info.sha256)).rejects.toMatchObject({ code: 'BLOB.CORRUPT' });
  });

  it('opens several blobs at once, each with its own outcome (found, missing, damaged, asked twice)', async () => {
    const small = createMysqlBlobStore(t.db, { chunkSize: 8 });
    const one = Buffer.from('one: a blob of three chunks');
    const two = Buffer.from('two');
    const [a, b, damaged] = await Promise.all([
      small.put(one),
      small.put(two),
      small.put(Buffer.from('damaged: chunk 0 gone')),
    ]);
    await t.db
      .deleteFrom('blob_chunks')
      .where('blob_key', '=', damaged.sha256)
      .where('seq', '=', 0)
      .execute();
    const missing = sha(Buffer.from('not stored either'));
    const outcomes = await Promise.allSettled(
      [a.sha256, b.sha256, missing, damaged.sha256, a.sha256].map((s) => small.read(s)),
    );
    expect(
      outcomes.map((o) =>
        o.status === 'fulfilled' ? o.value.toString() : (o.reason as PermanentError).code,
      ),
    ).toEqual([one.toString(), 'two', 'BLOB.NOT_FOUND', 'BLOB.CORRUPT', one.toString()]);
  });

  it('sweeps temporary chunks of uploads abandoned long ago, not those of recent ones', async () => {
    const old = `tmp:${uuidV7(Date.now() - 2 * 3600_000)}`;
    const recent = `tmp:${uuidV7()}`;
    const kept = await store.put(Buffer.from('a finished blob stays'));
    await t.db
      .insertInto('blob_chunks')
      .values([
        { blob_key: old, seq: 0, data: Buffer.from('x') },
        { blob_key: old, seq: 1, data: Buffer.from('y') },
        { blob_key: recent, seq: 0, data: Buffer.from('z') },
      ])
      .execute();
    expect(await sweepTemporaryChunks(t.db, new Date(Date.now() - 3600_000), 1)).toBe(2);
    const keys = await t.db
      .selectFrom('blob_chunks')
      .select('blob_key')
      .where('blob_key', 'like', 'tmp:%')
      .execute();
    expect(keys.map((k) => k.blob_key)).toEqual([recent]);
    expect((await store.read(kept.sha256)).toString()).toBe('a finished blob stays');
    await t.db.deleteFrom('blob_chunks').where('blob_key', '=', recent).execute();
  });

  it('writes many blobs in one transaction, once each, in a few statements, and nothing on a rollback', async () => {
    const small = createMysqlBlobStore(t.db, { chunkSize: 1000 });
    const existing = Buffer.from('stored before the batch '.repeat(10));
    await small.put(existing);
    const inputs = [
      Buffer.from('first of the batch'),
      existing,
      Buffer.from('first of the batch'), // the same bytes twice in one batch
      Buffer.alloc(0),
      Buffer.alloc(2500, 7), // three chunks of 1000
    ];
    // the empty blob may exist already (an earlier test stores one)
    const emptyIsNew = (await small.stat(sha(Buffer.alloc(0)))) === null ? 1 : 0;
    const before = await counts();
    await expect(
      t.db.transaction().execute(async (trx) => {
        await small.putMany!(inputs, trx);
        throw new Error('the batch failed');
      }),
    ).rejects.toThrow('the batch failed');
    expect(await counts()).toEqual(before);

    const statements: string[] = [];
    const infos = await t.db.transaction().execute((trx) =>
      small.putMany!(
        inputs,
        trx.withPlugin({
          transformQuery: (a) => (statements.push(a.node.kind), a.node),
          transformResult: async (a) => a.result,
        }),
      ),
    );
    expect(infos).toEqual(inputs.map((b) => ({ sha256: sha(b), size: b.length })));
    for (const b of inputs) expect(await small.read(sha(b))).toEqual(b);
    // new: the first, the big one (and the empty one); chunks: 1 + 3 (+ 0)
    expect(await counts()).toEqual({
      ...before,
      blobs: before.blobs + 2 + emptyIsNew,
      chunks: before.chunks + 4,
    });
    // one INSERT of the rows, one of the single chunks, then the big blob's row and its three chunks
    expect(statements).toEqual([
      'InsertQueryNode',
      'InsertQueryNode',
      'InsertQueryNode',
      'InsertQueryNode',
      'InsertQueryNode',
      'InsertQueryNode',
    ]);
  });
});
