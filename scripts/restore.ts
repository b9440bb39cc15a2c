/**
 * `npm run restore -- FILE [--force]`: restores a backup of `npm run backup` into MYSQL_URL's database
 * (created when missing). Refuses a database that has tables (unless `--force`, which replaces them),
 * a damaged archive, and a backup made by a newer schema. Stop Postroom's processes first.
 */
import type { ToolTls } from '../infra/backup/mysql-tools.js';
import { restoreBackup } from '../infra/backup/restore.js';
import { loadConfig, loadDotEnv } from '../infra/config.js';
import { PostroomError } from '../infra/errors.js';
import { createLogger } from '../infra/logger.js';

const args = process.argv.slice(2);
const force = args.includes('--force');
const files = args.filter((a) => a !== '--force');
if (files.length !== 1 || files[0]!.startsWith('-')) {
  process.stderr.write('usage: npm run restore -- FILE [--force]\n');
  process.exit(2);
}
loadDotEnv();
try {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL);
  const { manifest, migrated } = await restoreBackup({
    file: files[0]!,
    mysqlUrl: config.MYSQL_URL,
    tls: { mode: config.MYSQL_TLS as ToolTls['mode'], caFile: config.MYSQL_TLS_CA },
    force,
    log,
  });
  process.stdout.write(
    `restored the backup of ${manifest.createdAt} (Postroom ${manifest.version}, last migration ${manifest.lastMigration ?? 'none'})` +
      `${migrated.length ? `; then applied ${migrated.join(', ')}` : ''}\n`,
  );
} catch (err) {
  process.stderr.write(
    `${err instanceof PostroomError ? err.message : String((err as Error)?.stack ?? err)}\n`,
  );
  process.exit(1);
}
