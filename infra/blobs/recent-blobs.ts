import { Readable, Transform, pipeline } from 'node:stream';
import type { Transaction } from 'kysely';
import type { Database } from '../db/database.js';
import type { BlobInfo, BlobPutOptions, BlobStore } from './blob-store.js';

/** Options of {@link withRecentBlobs}. */
export interface RecentBlobsOptions {
  /** Bytes kept in all (default 16 MiB). */
  maxBytes?: number;
  /** Largest blob kept (default 1 MiB, one `blob_chunks` row); larger ones always go to the store. */
  maxItemBytes?: number;
  /** How long a blob is served from memory after it was kept (ms, default 60 s). */
  ttlMs?: number;
  /** Clock (tests). */
  now?: () => number;
}

/** A blob store that serves recently written or read small blobs from memory. */
export interface RecentBlobStore extends BlobStore {
  /** Blobs served from memory, and from the store, since the start. */
  readonly hits: number;
  readonly misses: number;
  /** Bytes held now. */
  readonly heldBytes: number;
}

interface Held {
  data: Buffer;
  at: number;
}

/**
 * Keeps the small blobs this process wrote or read in the last minute in memory, so the steps of one
 * mail in one process read its attachment from the database once instead of three times (the analysis,
 * the PDF preview, the filing: three `SELECT`s of the bytes per mail). Safe because blobs are content
 * addressed: the bytes under a SHA-256 never change, so a held copy can never be out of date. Held
 * copies are the bytes the store accepted (`put`) or returned whole and checked against their hash
 * (`open`, `read`); `stat`, the store's word on whether a blob exists, always asks the store.
 *
 * Memory is bounded by `maxBytes` (oldest first out) and each blob by `maxItemBytes`; a blob held
 * longer than `ttlMs` is read from the store again, so a blob deleted by retention stops being served
 * within that time. A put inside a transaction that then rolls back leaves a held copy of bytes the
 * store does not have: harmless, since nothing committed refers to them and they are exactly the
 * bytes of that hash.
 */
export function withRecentBlobs(inner: BlobStore, options: RecentBlobsOptions = {}): RecentBlobStore {
  const maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
  const maxItemBytes = Math.min(options.maxItemBytes ?? 1024 * 1024, maxBytes);
  const ttlMs = options.ttlMs ?? 60_000;
  const now = options.now ?? Date.now;
  // Insertion order is age order: a Map iterates oldest first.
  const held = new Map<string, Held>();
  let heldBytes = 0;
  let hits = 0;
  let misses = 0;

  const forget = (sha256: string) => {
    const h = held.get(sha256);
    if (!h) return;
    held.delete(sha256);
    heldBytes -= h.data.length;
  };

  const keep = (sha256: string, bytes: Buffer) => {
    if (bytes.length > maxItemBytes) return;
    forget(sha256);
    // A view into a larger buffer (an attachment cut from its message's source) would keep the whole
    // of it alive while `heldBytes` counted the view only: hold a copy of just the bytes.
    const data = bytes.byteLength === bytes.buffer.byteLength ? bytes : Buffer.from(bytes);
    held.set(sha256, { data, at: now() });
    heldBytes += data.length;
    for (const [key] of held) {
      if (heldBytes <= maxBytes) break;
      forget(key);
    }
  };

  const lookup = (sha256: string): Buffer | null => {
    const h = held.get(sha256);
    if (!h) return null;
    if (now() - h.at > ttlMs) {
      forget(sha256);
      return null;
    }
    return h.data;
  };

  async function put(input: Readable | Buffer, putOptions?: BlobPutOptions): Promise<BlobInfo> {
    const info = await inner.put(input, putOptions);
    if (Buffer.isBuffer(input)) keep(info.sha256, input);
    return info;
  }

  async function open(sha256: string): Promise<Readable> {
    const data = lookup(sha256);
    if (data) {
      hits++;
      return Readable.from([data], { objectMode: false });
    }
    misses++;
    const source = await inner.open(sha256);
    // Copies what passes by while it stays small; kept only when the stream ended well (the store
    // checks the bytes against their hash before it ends a blob's stream).
    // A blob found too large on the way is let go at once (its copied pieces with it).
    let parts: Buffer[] | null = [];
    let size = 0;
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        if (parts) {
          size += chunk.length;
          if (size <= maxItemBytes) parts.push(chunk);
          else parts = null;
        }
        done(null, chunk);
      },
      flush(done) {
        if (parts) keep(sha256, Buffer.concat(parts, size));
        parts = null;
        done();
      },
    });
    return pipeline(source, tap, () => undefined);
  }

  async function read(sha256: string): Promise<Buffer> {
    const data = lookup(sha256);
    if (data) {
      hits++;
      return Buffer.from(data);
    }
    misses++;
    const out = await inner.read(sha256);
    keep(sha256, Buffer.from(out)); // a copy: the caller owns `out`
    return out;
  }

  const putMany = inner.putMany?.bind(inner);
  return {
    put,
    ...(putMany
      ? {
          async putMany(inputs: readonly Buffer[], transaction: Transaction<Database>): Promise<BlobInfo[]> {
            const infos = await putMany(inputs, transaction);
            infos.forEach((info, i) => keep(info.sha256, inputs[i]!));
            return infos;
          },
        }
      : {}),
    open,
    read,
    stat: (sha256) => inner.stat(sha256),
    get hits() {
      return hits;
    },
    get misses() {
      return misses;
    },
    get heldBytes() {
      return heldBytes;
    },
  };
}
