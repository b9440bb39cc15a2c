/**
 * `npm run backup`: writes `BACKUP_DIR/postroom-<UTC time>.tar.gz` (a consistent dump of MYSQL_URL's
 * database and its manifest) and prints its path. Safe while Postroom runs.
 */
import { createBackup } from '../infra/backup/backup.js';
import type { ToolTls } from '../infra/backup/mysql-tools.js';
import { loadConfig, loadDotEnv } from '../infra/config.js';
import { PostroomError } from '../infra/errors.js';
import { createLogger } from '../infra/logger.js';

loadDotEnv();
try {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL);
  const { file } = await createBackup({
    mysqlUrl: config.MYSQL_URL,
    dir: config.BACKUP_DIR,
    tls: { mode: config.MYSQL_TLS as ToolTls['mode'], caFile: config.MYSQL_TLS_CA },
    log,
  });
  process.stdout.write(`${file}\n`);
} catch (err) {
  process.stderr.write(
    `${err instanceof PostroomError ? err.message : String((err as Error)?.stack ?? err)}\n`,
  );
  process.exit(1);
}
