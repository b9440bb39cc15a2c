/** Where the tests find the real services: the local ones by default, or what CI passes in. */
export const TEST_AMQP_URL = process.env['AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672';
/** MySQL server URL without a database; each test file creates its own database on it. */
export const TEST_MYSQL_SERVER = (process.env['MYSQL_URL'] ?? 'mysql://root@127.0.0.1:3306/').replace(
  /\/[^/]*$/,
  '/',
);
