import type { FileStore } from '../../infra/drive/drive-client.js';
import { runRetentionPass } from '../../infra/retention/retention-pass.js';
import type { JobRunner } from './jobs.handler.js';

/** What the retention runner needs. */
export interface RetentionDeps {
  /** `RETENTION_DAYS`; 0 keeps every byte (the run succeeds and says so). */
  retentionDays: number;
  /** The store attachments are filed in: each filed copy is checked before its MySQL bytes go. */
  files: () => Promise<FileStore>;
  /** Blobs looked at per query (default: the pass's). */
  batchSize?: number;
}

/**
 * `retention`: what `npm run retention` does (one pass of RETENTION_DAYS over the attachment bytes
 * in MySQL, see `runRetentionPass`). The pass is safe to run twice at once or to cut off halfway, so
 * a run interrupted by a crash loses nothing.
 */
export function createRetentionRunner(deps: RetentionDeps): JobRunner {
  return async ({ db, log, startedAt }) => {
    if (!(deps.retentionDays > 0))
      return { detail: 'retention is off (RETENTION_DAYS is 0): attachment bytes are kept forever' };
    const result = await runRetentionPass({
      db,
      log,
      retentionDays: deps.retentionDays,
      now: startedAt,
      files: deps.files,
      batchSize: deps.batchSize,
    });
    return {
      detail: `dropped ${result.dropped} blob${result.dropped === 1 ? '' : 's'}, ${result.bytesFreed} bytes freed (attachments filed more than ${deps.retentionDays} days ago)`,
    };
  };
}
