/**
 * `npm run migrate`: creates the database when missing and applies every pending migration, then exits.
 * (Every process also does this at start.)
 */
import { loadConfig, loadDotEnv } from '../infra/config.js';
import { connectDatabase } from '../infra/db/database.js';
import { ConfigError } from '../infra/errors.js';
import { createLogger } from '../infra/logger.js';

loadDotEnv();
try {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL);
  const { db } = await connectDatabase(config.MYSQL_URL, log);
  await db.destroy();
  log.info('database is up to date');
} catch (err) {
  process.stderr.write(
    `${err instanceof ConfigError ? err.message : String((err as Error)?.stack ?? err)}\n`,
  );
  process.exit(1);
}
