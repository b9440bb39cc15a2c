import { randomBytes } from 'node:crypto';
import { connect } from 'amqplib';
import { createConnection } from 'mysql2';
import { deleteTopology, type Topology } from '../../infra/broker/topology.js';
import { parseMysqlUrl } from '../../infra/db/database.js';

/** Where the services are, and the names this run owns on them. */
export interface BenchServices {
  amqpUrl: string;
  /** `mysql://user@host:port/` with no database. */
  mysqlServerUrl: string;
  /** Prefix of every database and broker namespace of this run. */
  runId: string;
}

/** Names of this run: databases `postroom_bench_<hex>_<label>`, namespaces `bench-<hex>-<label>`. */
export function newRunId(): string {
  return randomBytes(4).toString('hex');
}

/** The `mysql://` URL of a database on the server. */
export function databaseUrl(s: BenchServices, label: string): { url: string; name: string } {
  const name = `postroom_bench_${s.runId}_${label}`;
  const u = new URL(s.mysqlServerUrl);
  u.pathname = `/${name}`;
  return { url: u.toString(), name };
}

/** The broker namespace of a part of this run. */
export function namespaceOf(s: BenchServices, label: string): string {
  return `bench-${s.runId}-${label}`;
}

/** Server URL (no database) of a `MYSQL_URL`. */
export function mysqlServerOf(mysqlUrl: string): string {
  return parseMysqlUrl(mysqlUrl).serverUrl;
}

/** Facts about the services, or the reason one is unreachable. */
export interface ServiceFacts {
  rabbitmq: string;
  mysql: string;
  /** Settings that set the commit ceiling. */
  mysqlDurability: string;
}

/** Connects to both services once; throws a readable error when either does not answer in 5 s. */
export async function checkServices(s: BenchServices): Promise<ServiceFacts> {
  let rabbitmq: string;
  try {
    const conn = await connect(s.amqpUrl, { timeout: 5_000 });
    const props = (conn.connection as unknown as { serverProperties?: Record<string, unknown> })
      .serverProperties;
    rabbitmq = `RabbitMQ ${String(props?.['version'] ?? '?')}`;
    await conn.close();
  } catch (err) {
    throw new Error(`RabbitMQ is not reachable at ${redact(s.amqpUrl)}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const conn = createConnection({ uri: s.mysqlServerUrl, connectTimeout: 5_000 }).promise();
  try {
    const [rows] = await conn.query(
      'SELECT VERSION() AS v, @@innodb_flush_log_at_trx_commit AS f, @@sync_binlog AS b, @@log_bin AS l',
    );
    const r = (rows as Record<string, unknown>[])[0] ?? {};
    return {
      rabbitmq,
      mysql: `MySQL ${String(r['v'])}`,
      mysqlDurability: `innodb_flush_log_at_trx_commit=${String(r['f'])}, log_bin=${String(r['l'])}, sync_binlog=${String(r['b'])}`,
    };
  } catch (err) {
    throw new Error(`MySQL is not reachable at ${redact(s.mysqlServerUrl)}: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** Drops a database of this run; refuses any other name. */
export async function dropBenchDatabase(s: BenchServices, name: string): Promise<void> {
  if (!name.startsWith(`postroom_bench_${s.runId}`))
    throw new Error(`refusing to drop ${name}: not this run's`);
  const conn = createConnection({ uri: s.mysqlServerUrl }).promise();
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** Deletes a topology of this run (queues, retry queues, exchanges). */
export async function deleteBenchTopology(s: BenchServices, topology: Topology): Promise<void> {
  if (!topology.namespace.startsWith(`bench-${s.runId}`))
    throw new Error(`refusing to delete ${topology.namespace}: not this run's`);
  const conn = await connect(s.amqpUrl);
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    await deleteTopology(ch, topology);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** Deletes one queue of this run (no error when it is gone). */
export async function deleteBenchQueue(s: BenchServices, queue: string): Promise<void> {
  if (!queue.startsWith(`bench-${s.runId}`)) throw new Error(`refusing to delete ${queue}: not this run's`);
  const conn = await connect(s.amqpUrl);
  try {
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    await ch.deleteQueue(queue);
  } finally {
    await conn.close().catch(() => undefined);
  }
}

/** An AMQP or MySQL URL with its password masked. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** Cleanup steps run in reverse order, once, whatever failed before (and on Ctrl-C). */
export class Cleanup {
  private readonly steps: { what: string; fn: () => Promise<unknown> }[] = [];
  private running: Promise<string[]> | null = null;

  add(what: string, fn: () => Promise<unknown>): void {
    this.steps.push({ what, fn });
  }

  /** Runs every step once; every caller gets the same promise of the steps that failed, as messages. */
  run(): Promise<string[]> {
    this.running ??= (async () => {
      const failed: string[] = [];
      for (const step of this.steps.reverse()) {
        try {
          await step.fn();
        } catch (err) {
          failed.push(`${step.what}: ${(err as Error).message}`);
        }
      }
      return failed;
    })();
    return this.running;
  }
}
