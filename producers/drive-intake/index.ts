import { createDriveAuth } from '../../infra/drive/drive-auth.js';
import { describeError } from '../../infra/errors.js';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import { DriveIntakeApi } from './drive-intake-api.js';
import { createDriveIntake } from './drive-intake.js';

export { createDriveIntake, intakeMessageId, type DriveIntakeDeps, type PollResult } from './drive-intake.js';
export { DriveIntakeApi } from './drive-intake-api.js';

/**
 * Starts the Drive intake (part of role `drive`: SPEC's ROLES list has no intake role, and the
 * `drive` pods already hold the Drive credentials): polls `DRIVE_INTAKE_FOLDER_ID` every
 * `DRIVE_INTAKE_POLL_SECONDS`. Resolves null when no folder is set, or with no Google credentials
 * (a local `STORAGE_DIR` has no intake folder).
 */
export async function startDriveIntake(ctx: RoleContext): Promise<RoleHandle | null> {
  const { config } = ctx;
  const folderId = config.DRIVE_INTAKE_FOLDER_ID;
  const log = ctx.log.child({ module: 'drive-intake' });
  if (!folderId) return null;
  if (config.driveMode === 'local') {
    log.warn('DRIVE_INTAKE_FOLDER_ID is set but no Google credentials are: the Drive intake is off');
    return null;
  }
  const api = new DriveIntakeApi({ auth: await createDriveAuth(config), rootUrl: config.DRIVE_API_URL, log });
  const intake = createDriveIntake({
    db: ctx.db,
    blobs: ctx.blobs,
    api,
    folderId,
    maxBytes: config.ATTACHMENT_MAX_BYTES,
    log,
  });
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();
  const tick = () => {
    running = intake
      .pollOnce()
      .then(
        (r) => {
          if (r.files.length > 0) log.info({ files: r.files.length }, 'drive intake poll done');
        },
        (err: unknown) =>
          log.warn({ err }, `drive intake poll failed (${describeError(err)}); next poll retries`),
      )
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, config.DRIVE_INTAKE_POLL_SECONDS * 1000);
      });
  };
  tick();
  log.info({ folderId, pollSeconds: config.DRIVE_INTAKE_POLL_SECONDS }, 'drive intake started');
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
