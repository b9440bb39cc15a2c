import { connect } from 'amqplib';
import { createConnection } from 'mysql2';
import { TEST_AMQP_URL, TEST_MYSQL_SERVER } from './env.js';

/** Fails fast, with a clear message, when the real services the tests need do not answer. */
export default async function setup(): Promise<void> {
  try {
    const c = await connect(TEST_AMQP_URL);
    await c.close();
  } catch (err) {
    throw new Error(
      `RabbitMQ does not answer at ${TEST_AMQP_URL.replace(/:[^:@/]*@/, ':***@')}: ${String(err)}`,
    );
  }
  const conn = createConnection({ uri: TEST_MYSQL_SERVER }).promise();
  try {
    await conn.query('SELECT 1');
  } catch (err) {
    throw new Error(`MySQL/MariaDB does not answer at ${TEST_MYSQL_SERVER}: ${String(err)}`);
  } finally {
    await conn.end().catch(() => undefined);
  }
}
