import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Transaction } from 'kysely';
import type { BlobInfo, BlobPutOptions, BlobStore } from '../../infra/blobs/blob-store.js';
import type { Database } from '../../infra/db/database.js';

/** Largest blob held back for the email's transaction (bytes); larger ones stream to the store at once. */
const STAGED_BLOB_MAX_BYTES = 256 * 1024;
/** Most bytes held back per message; once reached, further blobs stream to the store at once. */
const STAGED_TOTAL_MAX_BYTES = 4 * 1024 * 1024;

/** Limits of a staging store (bytes); defaults above. */
export interface StagedBlobLimits {
  perBlob?: number;
  total?: number;
}

/** A blob store for one message's parse that holds small blobs back until the email is recorded. */
export interface StagedBlobStore extends BlobStore {
  /**
   * Writes the held-back blobs through the underlying store inside `trx` (the email's transaction),
   * in SHA-256 order (one lock order for every writer), each once.
   */
  writeStaged(trx: Transaction<Database>): Promise<void>;
  /** Blobs held back so far. */
  readonly stagedCount: number;
  /** Bytes held back so far. */
  readonly stagedBytes: number;
  /** The held-back blobs by SHA-256 (for {@link writeStagedTogether}). */
  readonly staged: ReadonlyMap<string, StagedBlob>;
  /** The store the held-back blobs are written to. */
  readonly inner: BlobStore;
}

/** One held-back blob. */
export interface StagedBlob {
  data: Buffer;
  /** The `maxBytes` it was put with. */
  maxBytes: number | undefined;
}

/** Writes held-back blobs through `inner` inside `trx`, in SHA-256 order (one lock order for every writer), each once. */
async function writeInOrder(
  inner: BlobStore,
  trx: Transaction<Database>,
  staged: Iterable<[string, StagedBlob]>,
): Promise<void> {
  const entries = [...new Map(staged).entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // Held-back blobs were within their maxBytes when they were kept: a store that writes many at once
  // needs no limit, and writes them in a few statements instead of two each.
  if (inner.putMany) {
    if (entries.length > 0)
      await inner.putMany(
        entries.map(([, { data }]) => data),
        trx,
      );
    return;
  }
  for (const [, { data, maxBytes }] of entries) {
    const opts: BlobPutOptions = { transaction: trx };
    if (maxBytes !== undefined) opts.maxBytes = maxBytes;
    await inner.put(data, opts);
  }
}

/**
 * Writes the held-back blobs of several messages (a batch recorded in one transaction) inside `trx`:
 * identical bytes held back by two messages are written once, and all of them in one SHA-256 order.
 */
export async function writeStagedTogether(
  trx: Transaction<Database>,
  stores: readonly StagedBlobStore[],
): Promise<void> {
  const inner = stores[0]?.inner;
  if (!inner) return;
  await writeInOrder(
    inner,
    trx,
    stores.flatMap((s) => [...s.staged.entries()]),
  );
}

function chunkOf(c: Buffer | string | Uint8Array): Buffer {
  if (typeof c === 'string') return Buffer.from(c);
  return Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

/**
 * Wraps `inner` for the parse of one message: a blob of at most `perBlob` bytes (while the message's
 * held-back bytes stay under `total`) is hashed and kept in memory instead of being written, and
 * {@link StagedBlobStore.writeStaged} writes it in the email's own transaction (two statements and no
 * commit of its own, against five statements and two commits for a separate put). A larger blob
 * streams to `inner` as before, its first bytes included, so memory stays bounded. If the email is
 * never recorded (a failure, a duplicate Message-ID) the held-back blobs are simply dropped: nothing
 * refers to them. Reads go to `inner`.
 */
export function createStagedBlobStore(inner: BlobStore, limits: StagedBlobLimits = {}): StagedBlobStore {
  const perBlob = limits.perBlob ?? STAGED_BLOB_MAX_BYTES;
  const total = limits.total ?? STAGED_TOTAL_MAX_BYTES;
  const staged = new Map<string, StagedBlob>();
  let stagedBytes = 0;

  const keep = (data: Buffer, maxBytes: number | undefined): BlobInfo => {
    const info = { sha256: createHash('sha256').update(data).digest('hex'), size: data.length };
    if (!staged.has(info.sha256)) {
      staged.set(info.sha256, { data, maxBytes });
      stagedBytes += data.length;
    }
    return info;
  };

  async function put(input: Readable | Buffer, options: BlobPutOptions = {}): Promise<BlobInfo> {
    const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
    const room = Math.min(perBlob, total - stagedBytes, maxBytes);
    if (options.transaction) return inner.put(input, options);
    if (Buffer.isBuffer(input))
      return input.length <= room ? keep(input, options.maxBytes) : inner.put(input, options);

    const iterator = (input as AsyncIterable<Buffer | string | Uint8Array>)[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let size = 0;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return keep(Buffer.concat(head, size), options.maxBytes);
      const chunk = chunkOf(next.value);
      head.push(chunk);
      size += chunk.length;
      if (size > room) break;
    }
    // Too big to hold back: what was read, then the rest of the same stream, go to the store (which
    // also enforces maxBytes). If the store stops early, the source is released with it.
    async function* rest(): AsyncGenerator<Buffer> {
      try {
        yield* head.splice(0);
        for (;;) {
          const next = await iterator.next();
          if (next.done) return;
          yield chunkOf(next.value);
        }
      } finally {
        await iterator.return?.();
      }
    }
    return inner.put(Readable.from(rest(), { objectMode: false }), options);
  }

  return {
    put,
    open: (sha256) => inner.open(sha256),
    read: (sha256) => inner.read(sha256),
    stat: (sha256) => inner.stat(sha256),
    writeStaged: (trx) => writeInOrder(inner, trx, staged.entries()),
    get stagedCount() {
      return staged.size;
    },
    get stagedBytes() {
      return stagedBytes;
    },
    staged,
    inner,
  };
}
