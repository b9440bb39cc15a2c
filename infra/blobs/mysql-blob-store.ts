import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Transaction } from 'kysely';
import { BatchLoader } from '../db/batch-loader.js';
import type { Database, Db } from '../db/database.js';
import { PermanentError, PostroomError, RetryableError } from '../errors.js';
import type { BlobInfo, BlobPutOptions, BlobStore } from './blob-store.js';

/** Options of the MySQL blob store. */
export interface MysqlBlobStoreOptions {
  /**
   * Bytes per `blob_chunks` row (default 1 MiB). Each chunk travels in one INSERT, hex-escaped (twice its
   * size), so it must stay well under the server's `max_allowed_packet` (16 MiB on MariaDB): at most 4 MiB.
   */
  chunkSize?: number;
  /** Attempts of the final transaction when the server reports a deadlock or lock wait timeout (default 5). */
  commitAttempts?: number;
}

/** Default bytes per chunk row. */
const DEFAULT_CHUNK_SIZE = 1024 * 1024;
const MAX_CHUNK_SIZE = 4 * 1024 * 1024;
const SHA256_HEX = /^[0-9a-f]{64}$/;
const TMP_PREFIX = 'tmp:';
// MariaDB/MySQL error numbers worth another attempt of the same transaction.
const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_LOCK_DEADLOCK = 1213;

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Temporary chunk keys use it so
 * that their age can be read from the key alone (`blob_chunks` has no timestamp) and so that keys of one
 * age form a contiguous range of the primary key, which {@link sweepTemporaryChunks} deletes.
 */
export function uuidV7(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = 0x70 | (b[6]! & 0x0f);
  b[8] = 0x80 | (b[8]! & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The `tmp:` key prefix shared by every upload that started before `at`, ordered like the keys. */
function tmpKeyBound(at: Date): string {
  const h = Math.max(0, at.getTime()).toString(16).padStart(12, '0');
  return `${TMP_PREFIX}${h.slice(0, 8)}-${h.slice(8, 12)}`;
}

function errno(err: unknown): number | undefined {
  const n = (err as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' ? n : undefined;
}

/** Wraps a database failure with what was being done; our own typed errors pass through. */
function storeError(what: string, err: unknown, details?: Record<string, unknown>): PostroomError {
  if (err instanceof PostroomError) return err;
  return new RetryableError(
    'BLOB.STORE_FAILED',
    `Blob store: ${what} failed: ${(err as Error)?.message ?? String(err)}`,
    {
      cause: err,
      details,
    },
  );
}

/** The input as an async sequence of Buffers, whatever the stream's encoding. */
async function* chunksOf(input: Readable | Buffer): AsyncGenerator<Buffer> {
  if (Buffer.isBuffer(input)) {
    yield input;
    return;
  }
  for await (const c of input as AsyncIterable<Buffer | string | Uint8Array>) {
    if (typeof c === 'string') yield Buffer.from(c);
    else if (Buffer.isBuffer(c)) yield c;
    else yield Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  }
}

/** A blob's row and its first chunk. */
interface BlobHead {
  size: number;
  chunk_count: number;
  data: Buffer | Uint8Array | null;
}

/**
 * A {@link BlobStore} in the `blobs` and `blob_chunks` tables.
 *
 * `put` hashes the input while it writes it in chunks under a temporary key `tmp:<uuidv7>`, holding at
 * most one chunk in memory; then one transaction inserts the `blobs` row and renames the chunks to the
 * SHA-256 key, or, when the row is already there (identical bytes, perhaps stored concurrently by
 * another process), deletes the temporary chunks. A `blobs` row therefore exists only once every chunk
 * is in place. A crash mid-upload leaves temporary chunks, which {@link sweepTemporaryChunks} removes.
 *
 * With `transaction` (a Buffer already in memory, hence already hashed) there is no temporary key: the
 * `blobs` row is inserted (INSERT IGNORE) and, when it is new, the chunks go straight under the SHA-256
 * key, all in the caller's transaction, so the row and its chunks again commit together or not at all.
 */
export function createMysqlBlobStore(db: Db, options: MysqlBlobStoreOptions = {}): BlobStore {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE)
    throw new RangeError(`chunkSize must be an integer from 1 to ${MAX_CHUNK_SIZE}, got ${chunkSize}`);
  const commitAttempts = Math.max(1, options.commitAttempts ?? 5);

  async function deleteKey(key: string): Promise<void> {
    await db.deleteFrom('blob_chunks').where('blob_key', '=', key).execute();
  }

  /** Inserts the blob row and renames the chunks, or drops them when the blob exists already. */
  async function commit(tmpKey: string, info: BlobInfo, chunkCount: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await db.transaction().execute(async (trx) => {
          // INSERT IGNORE waits for a concurrent uncommitted insert of the same hash, then ignores it.
          const r = await trx
            .insertInto('blobs')
            .ignore()
            .values({ sha256: info.sha256, size: info.size, chunk_count: chunkCount, created_at: new Date() })
            .executeTakeFirst();
          if (Number(r.numInsertedOrUpdatedRows ?? 0) === 1) {
            await trx
              .updateTable('blob_chunks')
              .set({ blob_key: info.sha256 })
              .where('blob_key', '=', tmpKey)
              .execute();
          } else {
            await trx.deleteFrom('blob_chunks').where('blob_key', '=', tmpKey).execute();
          }
        });
        return;
      } catch (err) {
        const n = errno(err);
        if (attempt < commitAttempts && (n === ER_LOCK_DEADLOCK || n === ER_LOCK_WAIT_TIMEOUT)) {
          await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 50));
          continue;
        }
        throw storeError(`committing blob ${info.sha256}`, err, { sha256: info.sha256 });
      }
    }
  }

  function tooLarge(maxBytes: number): PermanentError {
    return new PermanentError('BLOB.TOO_LARGE', `Blob refused: more than ${maxBytes} bytes`, {
      details: { maxBytes },
    });
  }

  /** Writes a Buffer in the caller's transaction: the blob row (if new) and its chunks, no temporary key. */
  async function putWithin(trx: Transaction<Database>, data: Buffer, maxBytes: number): Promise<BlobInfo> {
    if (data.length > maxBytes) throw tooLarge(maxBytes);
    const info: BlobInfo = { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
    const chunkCount = Math.ceil(data.length / chunkSize);
    try {
      // The same lock order as commit() (blobs, then blob_chunks). INSERT IGNORE: identical bytes
      // stored before (or being stored by another transaction, which it waits for) are left as they are.
      const r = await trx
        .insertInto('blobs')
        .ignore()
        .values({ sha256: info.sha256, size: info.size, chunk_count: chunkCount, created_at: new Date() })
        .executeTakeFirst();
      if (Number(r.numInsertedOrUpdatedRows ?? 0) !== 1) return info;
      for (let seq = 0; seq < chunkCount; seq++)
        await trx
          .insertInto('blob_chunks')
          .values({
            blob_key: info.sha256,
            seq,
            data: data.subarray(seq * chunkSize, (seq + 1) * chunkSize),
          })
          .execute();
      return info;
    } catch (err) {
      throw storeError(`writing blob ${info.sha256} in a transaction`, err, { sha256: info.sha256 });
    }
  }

  /**
   * Many Buffers in the caller's transaction: one multi-row INSERT IGNORE of their `blobs` rows (in
   * SHA-256 order, the lock order of every writer), then one of the chunks of those that fit in one
   * chunk. INSERT IGNORE of a chunk is safe there: a blob that already exists has its chunk 0 under
   * the same key, holding the same bytes, and is left as it is. A blob of several chunks is written by
   * {@link putWithin}, which writes chunks only for a row it inserted.
   */
  async function putMany(inputs: readonly Buffer[], trx: Transaction<Database>): Promise<BlobInfo[]> {
    const infos = inputs.map((data) => ({
      sha256: createHash('sha256').update(data).digest('hex'),
      size: data.length,
    }));
    const unique = new Map<string, Buffer>();
    infos.forEach((info, i) => unique.set(info.sha256, inputs[i]!));
    const sorted = [...unique].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const single = sorted.filter(([, data]) => data.length <= chunkSize);
    try {
      if (single.length > 0) {
        const createdAt = new Date();
        await trx
          .insertInto('blobs')
          .ignore()
          .values(
            single.map(([sha256, data]) => ({
              sha256,
              size: data.length,
              chunk_count: data.length === 0 ? 0 : 1,
              created_at: createdAt,
            })),
          )
          .execute();
        // Statements of at most ~4 MiB of bytes (hex-escaped twice that), well under max_allowed_packet.
        const withBytes = single.filter(([, data]) => data.length > 0);
        for (let i = 0; i < withBytes.length;) {
          const group: [string, Buffer][] = [];
          for (
            let bytes = 0;
            i < withBytes.length && (group.length === 0 || bytes + withBytes[i]![1].length <= MAX_CHUNK_SIZE);
            i++
          ) {
            group.push(withBytes[i]!);
            bytes += withBytes[i]![1].length;
          }
          await trx
            .insertInto('blob_chunks')
            .ignore()
            .values(group.map(([sha256, data]) => ({ blob_key: sha256, seq: 0, data })))
            .execute();
        }
      }
    } catch (err) {
      throw storeError(`writing ${single.length} blobs in a transaction`, err);
    }
    for (const [, data] of sorted)
      if (data.length > chunkSize) await putWithin(trx, data, Number.POSITIVE_INFINITY);
    return infos;
  }

  async function put(input: Readable | Buffer, putOptions: BlobPutOptions = {}): Promise<BlobInfo> {
    const maxBytes = putOptions.maxBytes ?? Number.POSITIVE_INFINITY;
    if (putOptions.transaction) {
      if (!Buffer.isBuffer(input))
        throw new TypeError('Blob store: a put inside a transaction takes a Buffer, not a stream');
      return putWithin(putOptions.transaction, input, maxBytes);
    }
    const tmpKey = `${TMP_PREFIX}${uuidV7()}`;
    const hash = createHash('sha256');
    let size = 0;
    let seq = 0;
    const pending: Buffer[] = [];
    let pendingBytes = 0;
    let wroteAny = false;

    /** Moves the first `n` pending bytes into one new buffer (one copy, whatever the input's pieces). */
    const takeChunk = (n: number): Buffer => {
      const out = Buffer.allocUnsafe(n);
      let offset = 0;
      while (offset < n) {
        const piece = pending[0]!;
        const take = Math.min(piece.length, n - offset);
        piece.copy(out, offset, 0, take);
        offset += take;
        if (take === piece.length) pending.shift();
        else pending[0] = piece.subarray(take);
      }
      pendingBytes -= n;
      return out;
    };

    const writeChunk = async (data: Buffer): Promise<void> => {
      wroteAny = true;
      try {
        await db.insertInto('blob_chunks').values({ blob_key: tmpKey, seq, data }).execute();
      } catch (err) {
        throw storeError(`writing chunk ${seq} of an upload`, err, { blobKey: tmpKey, seq });
      }
      seq++;
    };

    try {
      for await (const chunk of chunksOf(input)) {
        size += chunk.length;
        if (size > maxBytes) throw tooLarge(maxBytes);
        hash.update(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        while (pendingBytes >= chunkSize) await writeChunk(takeChunk(chunkSize));
      }
      if (pendingBytes > 0) await writeChunk(takeChunk(pendingBytes));
      const info: BlobInfo = { sha256: hash.digest('hex'), size };
      await commit(tmpKey, info, seq);
      return info;
    } catch (err) {
      // Leave nothing behind. If this cleanup fails too, the sweep removes the chunks later.
      if (wroteAny) await deleteKey(tmpKey).catch(() => undefined);
      throw err;
    }
  }

  async function stat(sha256: string): Promise<BlobInfo | null> {
    if (!SHA256_HEX.test(sha256)) return null;
    try {
      const row = await db
        .selectFrom('blobs')
        .select(['sha256', 'size'])
        .where('sha256', '=', sha256)
        .executeTakeFirst();
      return row ? { sha256: row.sha256, size: Number(row.size) } : null;
    } catch (err) {
      throw storeError(`reading blob ${sha256}`, err, { sha256 });
    }
  }

  /**
   * Rows and first chunks by SHA-256, a LEFT JOIN so that a missing chunk 0 still reads as "damaged"
   * below rather than "not stored". At most 100 blobs a statement, so at most 100 first chunks (of
   * `chunkSize`) in one answer: the callers asked for them at once and would each hold theirs anyway.
   */
  const heads = new BatchLoader<string, BlobHead>(async (shas) => {
    const rows = await db
      .selectFrom('blobs')
      .leftJoin('blob_chunks', (join) =>
        join.onRef('blob_chunks.blob_key', '=', 'blobs.sha256').on('blob_chunks.seq', '=', 0),
      )
      .select(['blobs.sha256', 'blobs.size', 'blobs.chunk_count', 'blob_chunks.data'])
      .where('blobs.sha256', 'in', shas)
      .execute();
    return new Map(rows.map((r) => [r.sha256, r]));
  });

  async function open(sha256: string): Promise<Readable> {
    const notFound = () =>
      new PermanentError('BLOB.NOT_FOUND', `Blob ${sha256} is not stored`, { details: { sha256 } });
    if (!SHA256_HEX.test(sha256)) throw notFound();
    // The row and its first chunk (most blobs are one chunk), read with those of the other blobs
    // opened in the same turn of the event loop (one statement for a burst of deliveries).
    let row: BlobHead | undefined;
    try {
      row = await heads.get(sha256);
    } catch (err) {
      throw storeError(`opening blob ${sha256}`, err, { sha256 });
    }
    if (!row) throw notFound();
    const chunkCount = Number(row.chunk_count);
    const size = Number(row.size);
    const hash = createHash('sha256');
    let seq = 0;
    let read = 0;
    let first: Buffer | Uint8Array | null = row.data;
    const corrupt = (why: string) =>
      new PermanentError('BLOB.CORRUPT', `Blob ${sha256} is damaged: ${why}`, { details: { sha256, seq } });
    const accept = (stream: Readable, chunk: Buffer | Uint8Array) => {
      const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      seq++;
      read += data.length;
      hash.update(data);
      stream.push(data);
    };

    // After the first, one query per chunk, issued only when the consumer asks for more: a chunk is
    // bigger than the high-water mark, so at most one chunk waits in the stream's buffer.
    return new Readable({
      read() {
        if (seq >= chunkCount) {
          // Check the bytes against their address before declaring the end.
          const digest = hash.digest('hex');
          if (read !== size) this.destroy(corrupt(`${read} bytes read, ${size} expected`));
          else if (digest !== sha256) this.destroy(corrupt('content does not match its SHA-256'));
          else this.push(null);
          return;
        }
        if (seq === 0 && chunkCount > 0) {
          const chunk = first;
          first = null;
          if (!chunk) this.destroy(corrupt('chunk 0 is missing'));
          else accept(this, chunk);
          return;
        }
        db.selectFrom('blob_chunks')
          .select('data')
          .where('blob_key', '=', sha256)
          .where('seq', '=', seq)
          .executeTakeFirst()
          .then(
            (chunk) => {
              if (!chunk) return this.destroy(corrupt(`chunk ${seq} is missing`));
              accept(this, chunk.data);
            },
            (err: unknown) =>
              this.destroy(storeError(`reading chunk ${seq} of blob ${sha256}`, err, { sha256, seq })),
          );
      },
    });
  }

  async function read(sha256: string): Promise<Buffer> {
    const stream = await open(sha256);
    const parts: Buffer[] = [];
    for await (const c of stream as AsyncIterable<Buffer>) parts.push(c);
    return Buffer.concat(parts);
  }

  return { put, open, read, stat, putMany };
}

/**
 * Deletes the temporary chunks of uploads that started before `olderThan` and never finished (the
 * process died mid-upload). Pass a time well before the longest upload can take (an hour ago, say):
 * a live upload's chunks would be deleted under it. Deletes in small batches; returns the rows deleted.
 */
export async function sweepTemporaryChunks(db: Db, olderThan: Date, batchSize = 50): Promise<number> {
  // Keys are `tmp:<uuidv7>`: hex of the start time first, so every older upload sorts below the bound,
  // and every SHA-256 key (hex digits only) sorts below `tmp:`.
  const bound = tmpKeyBound(olderThan);
  let total = 0;
  for (;;) {
    const r = await db
      .deleteFrom('blob_chunks')
      .where('blob_key', '>=', TMP_PREFIX)
      .where('blob_key', '<', bound)
      .limit(batchSize)
      .executeTakeFirst();
    const n = Number(r.numDeletedRows);
    total += n;
    if (n < batchSize) return total;
  }
}
