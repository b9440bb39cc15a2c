/**
 * `npm run backup` and `npm run restore` against a MariaDB that demands TLS (`require_secure_transport`)
 * with a certificate from a private CA, with MYSQL_TLS=verify and MYSQL_TLS_CA: the command-line tools
 * (`mariadb-dump`, `mariadb`) must get the TLS options as well as Postroom's own connections, or the
 * server refuses them. Runs the built scripts (`dist/scripts/*.js`, what `npm run backup` runs after
 * its build): run `npm run build` first.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTlsMariadb, type TlsServer } from '../../test/throwaway-servers.js';
import { createMysqlBlobStore } from '../blobs/mysql-blob-store.js';
import { connectDatabase, type DatabaseHandle } from '../db/database.js';
import { toolTarget } from './mysql-tools.js';

const REPO = resolve(fileURLToPath(import.meta.url), '../../..');

/** Runs a built script with only the given environment (and PATH); resolves with its exit and output. */
function runScript(
  script: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      [join(REPO, 'dist/scripts', script), ...args],
      { cwd: REPO, env: { PATH: process.env['PATH'] ?? '', LOG_LEVEL: 'warn', ...env } },
      (err, stdout, stderr) =>
        res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('backup and restore over MYSQL_TLS=verify', () => {
  let server: TlsServer;
  let source: DatabaseHandle;
  let dir: string;
  const url = (db: string) => `mysql://root@127.0.0.1:${server.port}/${db}`;
  const sourceName = `postroom_tls_test_${randomBytes(3).toString('hex')}`;
  const bytes = randomBytes(300_000);
  let sha256 = '';

  beforeAll(async () => {
    server = await startTlsMariadb();
    dir = await mkdtemp(join(tmpdir(), 'postroom-backup-tls-'));
    source = await connectDatabase(url(sourceName), undefined, {
      tls: { mode: 'verify', ca: readFileSync(server.certs.caFile) },
    });
    // Attachment bytes live in the blob store: binary chunks, the part of a dump most easily damaged.
    sha256 = (await createMysqlBlobStore(source.db, { chunkSize: 64 * 1024 }).put(bytes)).sha256;
    await source.db
      .insertInto('schedules')
      .values({
        name: 'nightly',
        kind: 'backup',
        schedule: '30 2 * * *',
        timezone: 'Europe/Berlin',
        misfire: 'skip',
        next_due_at: new Date('2026-12-04T01:30:00Z'),
        active: 1,
        created_at: new Date(),
        updated_at: new Date(),
      })
      .execute();
  }, 120_000);
  afterAll(async () => {
    await source?.db.destroy();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('npm run backup dumps over TLS, and npm run restore loads it into a new database over TLS', async () => {
    const tlsEnv = { MYSQL_TLS: 'verify', MYSQL_TLS_CA: server.certs.caFile };
    const backup = await runScript('backup.js', [], {
      ...tlsEnv,
      MYSQL_URL: url(sourceName),
      BACKUP_DIR: dir,
    });
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
    const file = backup.stdout.trim();
    expect(basename(file)).toMatch(/^postroom-\d{8}T\d{6}Z\.tar\.gz$/);

    const restoredName = `postroom_tls_test_restored_${randomBytes(3).toString('hex')}`;
    const restore = await runScript('restore.js', [file], { ...tlsEnv, MYSQL_URL: url(restoredName) });
    expect(restore.stderr).toBe('');
    expect(restore.code).toBe(0);
    expect(restore.stdout).toMatch(/^restored the backup of /);

    const restored = await connectDatabase(url(restoredName), undefined, {
      tls: { mode: 'verify', ca: readFileSync(server.certs.caFile) },
    });
    try {
      const back = await createMysqlBlobStore(restored.db).read(sha256);
      expect(back.equals(bytes)).toBe(true);
      const schedules = await restored.db.selectFrom('schedules').select(['name', 'timezone']).execute();
      expect(schedules).toEqual([{ name: 'nightly', timezone: 'Europe/Berlin' }]);
    } finally {
      await restored.db.destroy();
    }
  });

  it('MYSQL_TLS=required: npm run backup encrypts without checking the certificate', async () => {
    const backup = await runScript('backup.js', [], {
      MYSQL_TLS: 'required',
      MYSQL_URL: url(sourceName),
      BACKUP_DIR: dir,
    });
    expect(backup.stderr).toBe('');
    expect(backup.code).toBe(0);
  });

  it('the dump tool checks the certificate as mysql2 does: its CA and its host name', async () => {
    // mysql2 (which runs first in a backup) would refuse before the dump tool is reached: run
    // mariadb-dump alone with the arguments a backup gives it.
    const dump = (target: ReturnType<typeof toolTarget>) =>
      new Promise<{ code: number; stderr: string }>((res) =>
        execFile(
          'mariadb-dump',
          [...target.args, '--no-data', target.database],
          { env: target.env },
          (err, _out, stderr) =>
            res({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr }),
        ),
      );
    const verify = (caFile: string, at = url(sourceName)) => toolTarget(at, { mode: 'verify', caFile });
    expect((await dump(verify(server.certs.caFile))).code).toBe(0);

    const wrongCa = await dump(verify(server.otherCaFile));
    expect(wrongCa.code).not.toBe(0);
    expect(wrongCa.stderr).toMatch(/TLS|SSL|certificate/i);

    // The same server reached at 127.0.0.2, an address its certificate (127.0.0.1, localhost) lacks.
    const forward = createServer((client) => {
      const upstream = connect({ host: '127.0.0.1', port: server.port });
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((r) => forward.listen(0, '127.0.0.2', r));
    try {
      const { port } = forward.address() as AddressInfo;
      const otherName = await dump(
        verify(server.certs.caFile, `mysql://root@127.0.0.2:${port}/${sourceName}`),
      );
      expect(otherName.code).not.toBe(0);
      expect(otherName.stderr).toMatch(/TLS|SSL|certificate|name/i);
      // Not checking (required) connects through the same forwarder: the refusal above was the check.
      const unchecked = toolTarget(`mysql://root@127.0.0.2:${port}/${sourceName}`, { mode: 'required' });
      expect((await dump(unchecked)).code).toBe(0);
    } finally {
      forward.close();
    }
  });
});
