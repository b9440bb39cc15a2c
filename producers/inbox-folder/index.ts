import { resolve } from 'node:path';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import { createInboxFolder } from './inbox-folder.js';

export { createInboxFolder, DONE_DIR, FAILED_DIR } from './inbox-folder.js';
export type { InboxFolder, InboxFolderDeps, InboxFolderHealth } from './inbox-folder.js';

/** Largest raw message taken in, as for IMAP: two attachments at the bound plus 1 MiB of the rest. */
const messageMaxBytes = (attachmentMaxBytes: number) => attachmentMaxBytes * 2 + 1024 * 1024;

/**
 * Starts the `inbox` role: the drop folder INBOX_DIR (resolved against the working directory) on the
 * process's database and blob store. Its readiness check (`inbox`) is true while the folder can be read.
 */
export function startInboxFolder(ctx: Pick<RoleContext, 'config' | 'db' | 'blobs' | 'log'>): RoleHandle {
  const dir = resolve(ctx.config.INBOX_DIR);
  const folder = createInboxFolder({
    dir,
    db: ctx.db,
    blobs: ctx.blobs,
    log: ctx.log,
    limits: {
      attachmentMaxBytes: ctx.config.ATTACHMENT_MAX_BYTES,
      messageMaxBytes: messageMaxBytes(ctx.config.ATTACHMENT_MAX_BYTES),
    },
  });
  folder.start();
  return {
    stop: () => folder.stop(),
    readiness: [
      {
        name: 'inbox',
        check: () => folder.health().ready,
        detail: () => {
          const h = folder.health();
          return {
            dir: h.dir,
            lastScanAt: h.lastScanAt?.toISOString() ?? null,
            lastError: h.lastError,
            waiting: h.waiting,
          };
        },
      },
    ],
  };
}
