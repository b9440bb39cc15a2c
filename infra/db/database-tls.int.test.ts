/**
 * MYSQL_TLS against a real MariaDB that demands TLS (`require_secure_transport=ON`) with a certificate
 * from a private CA: `verify` with that CA connects encrypted, a wrong CA is refused with a hint,
 * `off` is refused by the server, `required` encrypts without checking. The whole process starts
 * against it too, ready on /readyz.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../config.js';
import { startPostroom } from '../../main.js';
import { testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { startTlsMariadb, type TlsServer } from '../../test/throwaway-servers.js';
import { connectDatabase, mysqlTlsFromConfig, mysqlTlsHint, type MysqlTls } from './database.js';
import { TEST_AMQP_URL } from '../../test/env.js';

let server: TlsServer;
const url = (db: string) => `mysql://root@127.0.0.1:${server.port}/${db}`;

beforeAll(async () => {
  server = await startTlsMariadb();
}, 120_000);
afterAll(async () => {
  await server?.stop();
});

/** The cipher of the session, empty when the connection is not encrypted. */
async function cipherOf(tls: MysqlTls, db: string): Promise<string> {
  const handle = await connectDatabase(url(db), undefined, { tls });
  try {
    const [rows] = await handle.pool.promise().query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    return String((rows as Array<{ Value: string }>)[0]?.Value ?? '');
  } finally {
    await handle.db.destroy();
  }
}

async function failure(tls: MysqlTls, db: string): Promise<unknown> {
  try {
    await cipherOf(tls, db);
  } catch (err) {
    return err;
  }
  throw new Error('connected although it should not');
}

describe('MYSQL_TLS against a MariaDB that requires TLS', () => {
  it('verify with the right CA: the database is created and migrated over an encrypted connection', async () => {
    const tls = mysqlTlsFromConfig(
      loadConfig({ MYSQL_URL: url('verify_ok'), MYSQL_TLS: 'verify', MYSQL_TLS_CA: server.certs.caFile }),
    );
    expect(await cipherOf(tls, 'verify_ok')).toMatch(/^TLS_|AES|CHACHA/);
  });

  it('verify also checks the host name: localhost is in the certificate, so it connects by name', async () => {
    const handle = await connectDatabase(`mysql://root@localhost:${server.port}/by_name`, undefined, {
      tls: { mode: 'verify', ca: readFileSync(server.certs.caFile) },
    });
    await handle.db.destroy();
  });

  it('verify with a CA that did not sign the certificate is refused, and says what to set', async () => {
    const err = await failure({ mode: 'verify', ca: readFileSync(server.otherCaFile) }, 'wrong_ca');
    expect(mysqlTlsHint(err, 'verify')).toMatch(
      /^MySQL's TLS certificate was refused \(.+\): set MYSQL_TLS_CA/,
    );
  });

  it('verify without a CA uses the system CAs, which do not know a private CA: refused', async () => {
    const err = await failure({ mode: 'verify' }, 'system_ca');
    expect(mysqlTlsHint(err, 'verify')).toMatch(/certificate was refused/);
  });

  it('off is refused by the server, and the hint says to turn TLS on', async () => {
    const err = await failure({ mode: 'off' }, 'plain');
    expect(mysqlTlsHint(err, 'off')).toMatch(/^MySQL refused the login .*set MYSQL_TLS=verify/);
  });

  it('required encrypts without checking the certificate', async () => {
    expect(await cipherOf({ mode: 'required' }, 'required_ok')).not.toBe('');
  });

  it('a whole Postroom process starts against it with MYSQL_TLS=verify and is ready', async () => {
    const app = await startPostroom(
      loadConfig({
        AMQP_URL: TEST_AMQP_URL,
        ROLES: 'api',
        MYSQL_URL: url('postroom_tls'),
        MYSQL_TLS: 'verify',
        MYSQL_TLS_CA: server.certs.caFile,
      }),
      { log: testLogger(), namespace: testNamespace('tls'), httpPort: 0 },
    );
    try {
      await waitFor(
        async () => (await fetch(`http://127.0.0.1:${app.port}/readyz`)).status === 200,
        15_000,
        '/readyz 200',
      );
    } finally {
      await app.stop();
    }
  });
});
