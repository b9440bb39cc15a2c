/**
 * `npm run replay-dead-letters -- [--list] [--all] [--consumer NAME] [ID ...]`: lists parked messages,
 * or puts the named ones (or all of them, or all of one consumer) back on their queues.
 */
import { Broker } from '../infra/broker/connection.js';
import { replayDeadLetter } from '../infra/broker/dead-letters.js';
import { CORE_CONSUMERS, postroomTopology } from '../infra/broker/subscriptions.js';
import { loadConfig, loadDotEnv } from '../infra/config.js';
import { connectDatabase } from '../infra/db/database.js';
import { listDeadLetters } from '../infra/db/repositories/dead-letters.repository.js';
import { describeError } from '../infra/errors.js';
import { createLogger } from '../infra/logger.js';

loadDotEnv();
const args = process.argv.slice(2);
const config = loadConfig();
const log = createLogger(config.LOG_LEVEL === 'info' ? 'warn' : config.LOG_LEVEL);
const { db } = await connectDatabase(config.MYSQL_URL, log);
const consumerAt = args.indexOf('--consumer');
const consumer = consumerAt >= 0 ? args[consumerAt + 1] : undefined;
const ids = args.filter((a, i) => !a.startsWith('--') && i !== consumerAt + 1);
let exitCode = 0;
try {
  if (args.includes('--list') || (ids.length === 0 && !args.includes('--all') && !consumer)) {
    const rows = await listDeadLetters(db, { consumer, limit: 500 });
    for (const r of rows)
      console.log(
        `${r.id}  ${r.parked_at.toISOString()}  ${r.consumer}  ${r.event_type ?? '?'}  attempts=${r.attempts}  ${r.reason}`,
      );
    console.log(`${rows.length} parked message(s)`);
  } else {
    const targets =
      ids.length > 0 ? ids : (await listDeadLetters(db, { consumer, limit: 500 })).map((r) => r.id);
    const broker = new Broker({
      url: config.AMQP_URL,
      topology: postroomTopology({ consumers: CORE_CONSUMERS }),
      log,
    });
    void broker.start();
    await broker.waitConnected(15_000);
    for (const id of targets) {
      try {
        const { queue } = await replayDeadLetter({ broker, db }, id);
        console.log(`replayed ${id} to ${queue}`);
      } catch (err) {
        exitCode = 1;
        console.error(`could not replay ${id}: ${describeError(err)}`);
      }
    }
    await broker.close();
  }
} finally {
  await db.destroy();
}
process.exit(exitCode);
