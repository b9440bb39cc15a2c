import type { Readable } from 'node:stream';
import type { Transaction } from 'kysely';
import type { Database } from '../db/database.js';

/** What the store knows of one blob. */
export interface BlobInfo {
  /** Lower-case hex SHA-256 of the bytes; the blob's address. */
  sha256: string;
  /** Size in bytes. */
  size: number;
}

/** Options of {@link BlobStore.put}. */
export interface BlobPutOptions {
  /** Largest input accepted (bytes); a larger one is refused with `BLOB.TOO_LARGE`. */
  maxBytes?: number;
  /**
   * Write inside this database transaction instead of in the store's own (Buffer input only): the blob
   * commits or rolls back with the caller's rows, in one round trip per table instead of several
   * statements and two commits. A store that keeps bytes elsewhere may ignore it and write at once,
   * which is still safe: writes are idempotent and the blob exists before the caller commits.
   */
  transaction?: Transaction<Database>;
}

/**
 * A content-addressed store: bytes are kept once under their SHA-256, whatever name they came with.
 * Writes are idempotent (the same bytes twice is one blob), so an event can carry the hash alone
 * (claim check) and any consumer can read the bytes back.
 */
export interface BlobStore {
  /**
   * Stores bytes and returns their address. A stream is hashed and written chunk by chunk, never held
   * whole in memory. With `maxBytes`, a larger input is refused with a `PermanentError`
   * (`BLOB.TOO_LARGE`) and nothing is kept.
   */
  put(input: Readable | Buffer, options?: BlobPutOptions): Promise<BlobInfo>;
  /** Reads a blob back as a stream; rejects with `BLOB.NOT_FOUND` when it is missing. */
  open(sha256: string): Promise<Readable>;
  /** Reads a whole blob into memory (for small blobs such as thumbnails). */
  read(sha256: string): Promise<Buffer>;
  /** The blob's size, or null when it is not stored. */
  stat(sha256: string): Promise<BlobInfo | null>;
  /**
   * Stores several Buffers inside the caller's transaction, as `put` with `transaction` does for one,
   * but in a few multi-row statements for them all (a batch of mails recorded together). Optional: a
   * caller without it puts them one by one. Returns their addresses in the order given.
   */
  putMany?(inputs: readonly Buffer[], transaction: Transaction<Database>): Promise<BlobInfo[]>;
}
