import { spawn } from 'node:child_process';
import { mysqlTlsFromConfig, openDatabase, parseMysqlUrl, type MysqlTls } from '../db/database.js';
import { PermanentError } from '../errors.js';

/** How the MariaDB command-line tools reach the server of a `mysql://` URL. */
export interface ToolTarget {
  /** `--host`, `--port`, `--user` (never the password: it goes in the environment). */
  args: string[];
  /** Environment with `MYSQL_PWD` when the URL has a password. */
  env: NodeJS.ProcessEnv;
  /** The database named in the URL. */
  database: string;
}

/** `MYSQL_TLS` and `MYSQL_TLS_CA` as the backup tools need them (the CA as a file for the command-line tools). */
export interface ToolTls {
  mode: 'off' | 'required' | 'verify';
  /** PEM file of the CA (`MYSQL_TLS_CA`). */
  caFile?: string;
}

/** The mysql2 form of a `ToolTls`. */
export function mysqlTlsOf(tls: ToolTls | undefined): MysqlTls | undefined {
  return tls ? mysqlTlsFromConfig({ MYSQL_TLS: tls.mode, MYSQL_TLS_CA: tls.caFile }) : undefined;
}

/** Runs `fn` with a one-connection pool on the URL (TLS as configured), closed after. */
export async function withConnection<T>(
  url: string,
  tls: ToolTls | undefined,
  fn: (query: (text: string, params?: unknown[]) => Promise<Record<string, unknown>[]>) => Promise<T>,
): Promise<T> {
  const { pool } = openDatabase(url, { connectionLimit: 1, tls: mysqlTlsOf(tls) });
  const p = pool.promise();
  try {
    return await fn(async (text, params) => (await p.query(text, params))[0] as Record<string, unknown>[]);
  } finally {
    await p.end().catch(() => undefined);
  }
}

/**
 * Arguments and environment of `mariadb` / `mariadb-dump` for a `mysql://` URL: TLS as `MYSQL_TLS`
 * says, as Postroom's own connections do (`required`: encrypted, certificate not checked; `verify`: the
 * server's certificate chain checked against `MYSQL_TLS_CA`, or the system CAs, and its host name).
 */
export function toolTarget(url: string, tls?: ToolTls): ToolTarget {
  const { database } = parseMysqlUrl(url);
  const u = new URL(url);
  const args = [`--host=${u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1'}`, `--port=${u.port || '3306'}`];
  if (u.username) args.push(`--user=${decodeURIComponent(u.username)}`);
  if (tls && tls.mode !== 'off') args.push('--ssl');
  // Said either way: MariaDB's clients from 11.4 on check the certificate unless told not to, those
  // before do not, so `required` must say so as plainly as `verify` does.
  if (tls?.mode === 'required') args.push('--skip-ssl-verify-server-cert');
  if (tls?.mode === 'verify') args.push('--ssl-verify-server-cert');
  if (tls?.mode === 'verify' && tls.caFile) args.push(`--ssl-ca=${tls.caFile}`);
  // The password never appears on a command line (other users can read those).
  const env: NodeJS.ProcessEnv = { ...process.env, MYSQL_PWD: decodeURIComponent(u.password) };
  if (!u.password) delete env['MYSQL_PWD'];
  return { args, env, database };
}

/** The first of these programs found on the PATH (MariaDB names first, then MySQL's). */
export async function findTool(names: readonly string[]): Promise<string> {
  for (const name of names) {
    const ok = await new Promise<boolean>((resolve) => {
      const p = spawn(name, ['--version'], { stdio: 'ignore' });
      p.once('error', () => resolve(false));
      p.once('exit', (code) => resolve(code === 0));
    });
    if (ok) return name;
  }
  throw new PermanentError(
    'BACKUP.TOOL_MISSING',
    `None of ${names.join(', ')} is installed (Debian: apt-get install mariadb-client; scripts/install-mariadb-client.sh)`,
  );
}

/** Collects the last few KiB a child wrote to stderr, for error messages. */
export function stderrTail(child: { stderr: NodeJS.ReadableStream | null }): () => string {
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => {
    tail = (tail + d.toString('utf8')).slice(-4096);
  });
  return () => tail.trim();
}
