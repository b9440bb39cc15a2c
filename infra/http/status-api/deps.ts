import type { BlobStore } from '../../blobs/blob-store.js';
import type { Broker } from '../../broker/connection.js';
import type { Db } from '../../db/database.js';
import type { FileStore } from '../../drive/file-store.js';
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
  /** Depths of the consumer, retry and dead queues (see `createQueueDepthReader`). */
  queueDepths: () => Promise<QueueDepths>;
}
