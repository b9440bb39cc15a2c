/**
 * `npm run retention`: one retention pass (RETENTION_DAYS): drops from MySQL the bytes of filed
 * attachments older than the limit, after checking that each filed copy is still there. Safe to run
 * while Postroom runs, twice at once, or to stop halfway. Prints what it did as JSON, then exits.
 */
import { loadConfig, loadDotEnv } from '../infra/config.js';
import { connectDatabase } from '../infra/db/database.js';
import { lazyFileStore } from '../infra/drive/drive-client.js';
import { ConfigError } from '../infra/errors.js';
import { createLogger } from '../infra/logger.js';
import { runRetentionPass } from '../infra/retention/retention-pass.js';

loadDotEnv();
try {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL);
  const { db } = await connectDatabase(config.MYSQL_URL, log);
  try {
    if (config.RETENTION_DAYS === 0) log.warn('RETENTION_DAYS is 0: attachment bytes are kept forever');
    const result = await runRetentionPass({
      db,
      log,
      retentionDays: config.RETENTION_DAYS,
      files: lazyFileStore({ config, db, log }),
    });
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await db.destroy();
  }
} catch (err) {
  process.stderr.write(
    `${err instanceof ConfigError ? err.message : String((err as Error)?.stack ?? err)}\n`,
  );
  process.exit(1);
}
