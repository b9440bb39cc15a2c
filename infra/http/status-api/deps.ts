import type { BlobStore } from '../../blobs/blob-store.js';
import type { Broker } from '../../broker/connection.js';
import type { Db } from '../../db/database.js';
import type { FileStore } from '../../drive/file-store.js';
import { detectOptionalTables, type OptionalTables } from '../../db/repositories/status.repository.js';
import type { Logger } from '../../logger.js';
import type { QueueDepths } from './queue-depths.js';

/** What the status API's routes read from. */
export interface StatusApiDeps {
  db: Db;
  broker: Broker;
  blobs: BlobStore;
  log: Logger;
  /** Where filed copies are read from once retention dropped the bytes from MySQL (made on first use). */
  files: () => Promise<FileStore>;
  /** Which optional tables (`calls`, `notifications`) exist; see `optionalTablesProbe`. */
  tables: () => Promise<OptionalTables>;
  /** Depths of the consumer, retry and dead queues (see `createQueueDepthReader`). */
  queueDepths: () => Promise<QueueDepths>;
}

/**
 * Finds out which optional tables exist, and looks again every `recheckMs` while one is missing: the
 * outbound and Telegram migrations may run later, from a newer process, without this one restarting.
 */
export function optionalTablesProbe(
  db: Db,
  recheckMs = 30_000,
  now: () => number = Date.now,
): () => Promise<OptionalTables> {
  let known: OptionalTables | null = null;
  let checkedAt = 0;
  let pending: Promise<OptionalTables> | null = null;
  return async () => {
    if (known && ((known.calls && known.notifications) || now() - checkedAt < recheckMs)) return known;
    pending ??= detectOptionalTables(db)
      .then((t) => {
        known = t;
        checkedAt = now();
        return t;
      })
      .finally(() => {
        pending = null;
      });
    return pending;
  };
}
