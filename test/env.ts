/** Where the tests find RabbitMQ: AMQP_URL (CI, or test/global-setup.ts's container), else the local one. */
export function testAmqpUrl(): string {
  return process.env['AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';
}
/** MySQL server URL without a database (MYSQL_URL's, else the local one). */
export function testMysqlServer(): string {
  return (process.env['MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/').replace(/\/[^/]*$/, '/');
}

/** Where the tests find the real services: the local ones by default, or what CI passes in. */
export const TEST_AMQP_URL = testAmqpUrl();
/** MySQL server URL without a database; each test file creates its own database on it. */
export const TEST_MYSQL_SERVER = testMysqlServer();
