import { startConsumer } from '../../infra/broker/consume.js';
import { ConfigError } from '../../infra/errors.js';
import type { RoleContext, RoleHandle } from '../../infra/roles.js';
import { createFileStore } from '../../infra/drive/drive-client.js';
import { createDriveUploadHandler } from './drive-upload.handler.js';
import { validateFolderTemplate } from './folder-template.js';

/** Starts the Drive upload consumer (role `drive`): Google Drive with credentials, `STORAGE_DIR` without. */
export async function startDriveUpload(ctx: RoleContext): Promise<RoleHandle> {
  const problems = validateFolderTemplate(ctx.config.DRIVE_FOLDER_TEMPLATE);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `DRIVE_FOLDER_TEMPLATE: ${p}`));
  const store = await createFileStore({ config: ctx.config, db: ctx.db, log: ctx.log });
  ctx.log.info(
    {
      backend: store.backend,
      ...(store.backend === 'local'
        ? { dir: ctx.config.STORAGE_DIR }
        : { root: ctx.config.DRIVE_ROOT_FOLDER_ID }),
    },
    store.backend === 'local' ? 'no Google credentials: filing under STORAGE_DIR' : 'filing in Google Drive',
  );
  const def = createDriveUploadHandler({
    store,
    blobs: ctx.blobs,
    folderTemplate: ctx.config.DRIVE_FOLDER_TEMPLATE,
  });
  return startConsumer(def, ctx);
}
