import { spawn } from 'node:child_process';
import { parseMysqlUrl } from '../db/database.js';
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

/** Arguments and environment of `mariadb` / `mariadb-dump` for a `mysql://` URL. */
export function toolTarget(url: string): ToolTarget {
  const { database } = parseMysqlUrl(url);
  const u = new URL(url);
  const args = [`--host=${u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1'}`, `--port=${u.port || '3306'}`];
  if (u.username) args.push(`--user=${decodeURIComponent(u.username)}`);
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
