import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import { createImapPoller, type ImapPollerHealth } from './imap-poller.js';

export { createImapPoller } from './imap-poller.js';
export type { ImapPoller, ImapPollerHealth, ImapPollerDeps, ImapPollerState } from './imap-poller.js';

/** The started `imap` role: its RoleHandle plus the poller's health for metrics and /readyz. */
export interface ImapPollerHandle extends RoleHandle {
  /** The poller's current health. */
  health(): ImapPollerHealth;
}

/**
 * Starts the `imap` role: the IMAP poller on the process's database and blob store. Its readiness
 * check (`imap`) is true while connected with a recent successful probe or sync.
 */
export function startImapPoller(ctx: Pick<RoleContext, 'config' | 'db' | 'blobs' | 'log'>): ImapPollerHandle {
  const poller = createImapPoller({ config: ctx.config, db: ctx.db, blobs: ctx.blobs, log: ctx.log });
  poller.start();
  return {
    stop: () => poller.stop(),
    health: () => poller.health(),
    readiness: [
      {
        name: 'imap',
        check: () => poller.health().ready,
        detail: () => {
          const h = poller.health();
          return {
            state: h.state,
            mailbox: h.mailbox,
            idle: h.idleSupported,
            lastOkAt: h.lastOkAt?.toISOString() ?? null,
            lastSyncAt: h.lastSyncAt?.toISOString() ?? null,
            lastError: h.lastError,
          };
        },
      },
    ],
  };
}
