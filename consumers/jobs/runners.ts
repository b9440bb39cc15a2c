import { createDriveFileStore, lazyFileStore } from '../../infra/drive/drive-client.js';
import { normalizeHost, type Resolver } from '../../infra/outbound/address-policy.js';
import type { RoleContext } from '../../infra/roles.js';
import type { ToolTls } from '../../infra/backup/mysql-tools.js';
import type { JobKind } from '../../infra/schedules/schedules-file.js';
import { configuredTelegramClient, type TelegramClient } from '../../infra/telegram/telegram-client.js';
import { createBackupRunner } from './backup.handler.js';
import { createDigestRunner } from './digest.handler.js';
import type { JobRunner } from './jobs.handler.js';
import { createPollRunner } from './poll.handler.js';
import { createRetentionRunner } from './retention.handler.js';

/** Test overrides of the built-in runners' parts. */
export interface RunnerOptions {
  /** Name resolution of poll URLs (default: the system resolver). */
  resolve?: Resolver;
  /** Waits between poll attempts, in ms. */
  pollRetryDelayMs?: (attempt: number) => number;
  /** A Telegram client instead of the configured one. */
  telegram?: TelegramClient | null;
}

/** The built-in runner of each kind, wired to this process's configuration. */
export async function defaultRunners(
  ctx: RoleContext,
  opts: RunnerOptions,
): Promise<Partial<Record<JobKind, JobRunner>>> {
  const { config } = ctx;
  if (config.DRIVE_BACKUP_FOLDER_ID && config.driveMode === 'local')
    ctx.log.warn(
      'DRIVE_BACKUP_FOLDER_ID is set but no Google credentials are: backups stay in BACKUP_DIR only',
    );
  const drive =
    config.DRIVE_BACKUP_FOLDER_ID && config.driveMode !== 'local'
      ? {
          store: await createDriveFileStore({ config, db: ctx.db, log: ctx.log }),
          folderId: config.DRIVE_BACKUP_FOLDER_ID,
        }
      : null;
  const telegram =
    opts.telegram !== undefined ? opts.telegram : configuredTelegramClient(config, ctx.log, 'digests are');
  return {
    poll: createPollRunner({
      blobs: ctx.blobs,
      allowHosts: new Set(config.outboundAllowHosts.map(normalizeHost)),
      resolve: opts.resolve,
      retryDelayMs: opts.pollRetryDelayMs,
    }),
    digest: createDigestRunner(telegram),
    backup: createBackupRunner({
      mysqlUrl: config.MYSQL_URL,
      dir: config.BACKUP_DIR,
      keep: config.BACKUP_KEEP,
      tls: { mode: config.MYSQL_TLS as ToolTls['mode'], caFile: config.MYSQL_TLS_CA },
      drive,
    }),
    retention: createRetentionRunner({
      retentionDays: config.RETENTION_DAYS,
      files: lazyFileStore({ config, db: ctx.db, log: ctx.log }),
    }),
  };
}
