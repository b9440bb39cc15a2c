/** One content-addressed blob; the row exists only once every chunk is written. */
export interface BlobsTable {
  /** Hex SHA-256 of the bytes. */
  sha256: string;
  /** Bytes. */
  size: number;
  /** Number of rows in blob_chunks. */
  chunk_count: number;
  created_at: Date;
}

/** The bytes of blobs, in chunks small enough for any server's max_allowed_packet. */
export interface BlobChunksTable {
  /** The blob's SHA-256, or `tmp:<uuid>` while an upload is being written. */
  blob_key: string;
  /** Chunk number from 0. */
  seq: number;
  data: Buffer;
}
