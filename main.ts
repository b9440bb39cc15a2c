import type { Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { backoffMs } from './infra/backoff.js';
import { createMysqlBlobStore } from './infra/blobs/mysql-blob-store.js';
import { withRecentBlobs } from './infra/blobs/recent-blobs.js';
import { Broker } from './infra/broker/connection.js';
import { startDeadLetterCollector } from './infra/broker/dead-letters.js';
import { startOutboxRelay, type OutboxRelay } from './infra/broker/outbox-relay.js';
import { CORE_CONSUMERS, postroomTopology, type ConsumerName } from './infra/broker/subscriptions.js';
import { loadConfig, loadDotEnv, type Config, type Role } from './infra/config.js';
import {
  connectDatabase,
  mysqlTlsFromConfig,
  mysqlTlsHint,
  pingDatabase,
  type DatabaseHandle,
} from './infra/db/database.js';
import { startErrorTracking } from './infra/error-tracking.js';
import { ConfigError } from './infra/errors.js';
import { createApp, type ReadinessCheck } from './infra/http/app.js';
import { buildOpenApi } from './infra/http/openapi.js';
import { createLogger, redactUrl, type Logger } from './infra/logger.js';
import { brokerConnected, databaseUp } from './infra/metrics.js';
import { combineRoles, type RoleContext, type RoleHandle } from './infra/roles.js';

/** Starts one role; null when the role has nothing to do with this configuration (for example no IMAP_HOST). */
export type RoleStarter = (ctx: RoleContext) => Promise<RoleHandle | null>;

/** Every role and how to start it; a role with nothing to do under this configuration returns null. */
const ROLE_STARTERS: Record<Role, RoleStarter> = {
  imap: async (ctx) => {
    if (!ctx.config.IMAP_HOST) {
      ctx.log.info('imap role: IMAP_HOST is not set; the poller is off');
      return null;
    }
    const { startImapPoller } = await import('./producers/imap-poller/index.js');
    return startImapPoller(ctx);
  },
  inbox: async (ctx) => {
    if (!ctx.config.INBOX_DIR) {
      ctx.log.info('inbox role: INBOX_DIR is empty; the drop folder is off');
      return null;
    }
    return (await import('./producers/inbox-folder/index.js')).startInboxFolder(ctx);
  },
  analysis: async (ctx) =>
    (await import('./consumers/attachment-analysis/index.js')).startAttachmentAnalysis(ctx),
  // The Drive intake rides on the drive role (SPEC's ROLES has no intake role): same credentials.
  drive: async (ctx) => {
    const [{ startDriveUpload }, { startDriveIntake }] = await Promise.all([
      import('./consumers/drive-upload/index.js'),
      import('./producers/drive-intake/index.js'),
    ]);
    return combineRoles(await startDriveUpload(ctx), await startDriveIntake(ctx));
  },
  telegram: async (ctx) => {
    const [{ startTelegramWebhook }, { startTelegramBot }] = await Promise.all([
      import('./producers/telegram-webhook/index.js'),
      import('./consumers/telegram-bot/index.js'),
    ]);
    return combineRoles(await startTelegramWebhook(ctx), await startTelegramBot(ctx));
  },
  notify: async (ctx) => (await import('./consumers/telegram-notifier/index.js')).startTelegramNotifier(ctx),
  outbound: async (ctx) => (await import('./consumers/outbound-api/index.js')).startOutboundApi(ctx),
  api: async (ctx) => (await import('./infra/http/status-api/index.js')).startStatusApi(ctx),
  convert: async (ctx) => {
    if (ctx.config.converter === 'off') {
      ctx.log.info(
        { CONVERTER: ctx.config.CONVERTER },
        'convert role: no converter (CONVERTER=off, or auto without soffice on the PATH); documents are not converted',
      );
      return null;
    }
    return (await import('./consumers/conversion/index.js')).startConversion(ctx);
  },
  scheduler: async (ctx) => {
    const [{ startSchedulerRole }, { startJobs }] = await Promise.all([
      import('./producers/scheduler/index.js'),
      import('./consumers/jobs/index.js'),
    ]);
    // The consumer first: a due time claimed at once finds its queue being read.
    const jobs = await startJobs(ctx);
    return combineRoles(jobs, await startSchedulerRole(ctx));
  },
};

/** The consumer queues this process declares: the main path always, the optional ones when it runs them configured. */
export function declaredConsumers(config: Config): ConsumerName[] {
  const names: ConsumerName[] = [...CORE_CONSUMERS];
  const has = (r: Role) => config.roles.includes(r);
  if (has('outbound') && config.HOOKS_FILE) names.push('outbound-api');
  if (has('telegram') && config.TELEGRAM_BOT_TOKEN) names.push('telegram-bot');
  if (has('notify') && config.TELEGRAM_BOT_TOKEN) names.push('telegram-notifier');
  // Declared by every process that knows a converter is configured (as analysis marks conversions
  // pending then), so the documents wait in RabbitMQ until a convert process takes them.
  if (config.converter !== 'off') names.push('conversion');
  if (has('scheduler') && config.SCHEDULES_FILE) names.push('jobs');
  return names;
}

/** Options for starting Postroom in-process (tests start it with a namespace of their own). */
export interface StartOptions {
  log?: Logger;
  /** Broker name prefix (default `postroom`). */
  namespace?: string;
  retryDelaysMs?: readonly number[];
  /** Role starters to use instead of the built-in ones (tests). */
  starters?: Partial<Record<Role, RoleStarter>>;
  /** Listen on this port instead of HTTP_PORT (0 picks a free one). */
  httpPort?: number;
}

/** A running Postroom process. */
export interface Postroom {
  config: Config;
  broker: Broker;
  database: DatabaseHandle;
  server: Server;
  /** Port the HTTP server listens on. */
  port: number;
  relay: OutboxRelay;
  /** Stops consuming, finishes in-flight work, flushes the outbox, closes every connection. */
  stop(): Promise<void>;
}

async function connectDatabaseWithRetry(
  config: Config,
  log: Logger,
  stopped: () => boolean,
): Promise<DatabaseHandle> {
  const tls = mysqlTlsFromConfig(config);
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectDatabase(config.MYSQL_URL, log, { tls });
    } catch (err) {
      if (stopped()) throw err;
      const delay = backoffMs({ baseMs: 1_000, maxMs: 15_000, jitter: 0 }, attempt - 1);
      log.warn(
        { err, attempt, url: redactUrl(config.MYSQL_URL), retryInMs: delay },
        mysqlTlsHint(err, tls.mode) ?? 'MySQL is not reachable yet',
      );
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/**
 * How far V8 lets the old generation grow past what the last full collection left alive (percent).
 * Left to itself V8 allows up to 4x on a machine with this much memory: under a burst of mail a live
 * heap of ~42 MB grew to ~123 MB between full collections, and the Buffers that died meanwhile (up to
 * ~45 MB, malloc'd) were freed only by them, so the process peaked at 310-330 MB RSS and glibc kept
 * ~240 MB after the burst. At 50% the old generation stays under ~65 MB and the peak at ~200-210 MB,
 * for ~10 more full collections per 2,000 mails (marked concurrently; no measurable CPU per mail).
 */
export const HEAP_GROWING_PERCENT = 50;

/**
 * Caps the heap growth at {@link HEAP_GROWING_PERCENT} unless the command line sets
 * `--heap-growing-percent` itself. V8 reads the flag at every full collection, so setting it at run
 * time works (Node does not freeze V8 flags after start-up).
 */
export function limitHeapGrowth(execArgv: readonly string[] = process.execArgv): void {
  if (execArgv.some((arg) => /^--heap[-_]growing[-_]percent\b/.test(arg))) return;
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

/** Starts every role of `config.roles` with the shared parts they need. */
export async function startPostroom(config: Config, opts: StartOptions = {}): Promise<Postroom> {
  limitHeapGrowth();
  const log = opts.log ?? createLogger(config.LOG_LEVEL);
  const tracker = await startErrorTracking(config, log);
  const readiness: ReadinessCheck[] = [];
  const roleHandles: RoleHandle[] = [];
  const openapiParts: NonNullable<RoleHandle['openapi']>[] = [];
  let stopping = false;

  const topology = postroomTopology({
    namespace: opts.namespace,
    retryDelaysMs: opts.retryDelaysMs,
    consumers: declaredConsumers(config),
  });
  const broker = new Broker({
    url: config.AMQP_URL,
    tlsCa: config.AMQP_TLS_CA ? readFileSync(config.AMQP_TLS_CA) : undefined,
    topology,
    log,
    connectionName: `postroom ${config.roles.join(',')}`,
  });
  broker.on('connected', () => brokerConnected.set(1));
  broker.on('disconnected', () => brokerConnected.set(0));
  let database: DatabaseHandle | null = null;
  readiness.push({ name: 'rabbitmq', check: () => broker.isConnected() });
  readiness.push({
    name: 'mysql',
    check: async () => {
      const ok = database ? await pingDatabase(database.pool) : false;
      databaseUp.set(ok ? 1 : 0);
      return ok;
    },
  });

  // The HTTP server comes up first, so /healthz answers and /readyz tells what is still missing.
  const { app, mount } = createApp({
    log,
    readiness,
    trustProxy: config.HTTP_TRUST_PROXY,
    openapi: () =>
      buildOpenApi({
        paths: Object.assign({}, ...openapiParts.map((p) => p.paths ?? {})) as Record<string, unknown>,
        schemas: Object.assign({}, ...openapiParts.map((p) => p.schemas ?? {})) as Record<string, unknown>,
      }),
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(opts.httpPort ?? config.HTTP_PORT, () => resolve(s));
    s.once('error', reject);
  });
  server.keepAliveTimeout = 65_000;
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.HTTP_PORT;
  log.info({ port, roles: config.roles }, 'HTTP server listening');

  database = await connectDatabaseWithRetry(config, log, () => stopping);
  // A process that reads back what it stores (analysis, filing, conversion after the poller) keeps the
  // last minute's small blobs in memory: one SELECT of the bytes per mail instead of three.
  const stored = createMysqlBlobStore(database.db);
  const blobs = config.roles.some((r) => r === 'analysis' || r === 'drive' || r === 'convert')
    ? withRecentBlobs(stored)
    : stored;
  void broker.start();
  const relay = startOutboxRelay({ broker, db: database.db, log });
  const ctx: RoleContext = { config, log, db: database.db, pool: database.pool, broker, blobs };

  const consumerRoles: Role[] = [
    'analysis',
    'drive',
    'outbound',
    'notify',
    'telegram',
    'convert',
    'scheduler',
  ];
  const collector = config.roles.some((r) => consumerRoles.includes(r))
    ? await startDeadLetterCollector(ctx)
    : null;

  for (const role of config.roles) {
    const starter = opts.starters?.[role] ?? ROLE_STARTERS[role];
    const handle = await starter({ ...ctx, log: log.child({ role }) });
    if (!handle) continue;
    roleHandles.push(handle);
    readiness.push(...(handle.readiness ?? []));
    for (const r of handle.routers ?? []) mount(r.path, r.router);
    if (handle.openapi) openapiParts.push(handle.openapi);
  }
  log.info({ roles: config.roles, namespace: topology.namespace }, 'Postroom started');

  const db = database;
  return {
    config,
    broker,
    database: db,
    server,
    port,
    relay,
    async stop() {
      if (stopping) return;
      stopping = true;
      log.info('stopping: no new work; finishing what is in flight');
      await new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await Promise.allSettled(roleHandles.map((h) => h.stop()));
      await collector?.stop();
      await relay.stop();
      await broker.close();
      await db.db.destroy();
      await tracker.flush();
      log.info('stopped');
    },
  };
}

/** The command-line entry: `.env`, configuration, roles, and a clean exit on SIGTERM or SIGINT. */
async function main(): Promise<void> {
  loadDotEnv();
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.LOG_LEVEL);
  let postroom: Postroom | null = null;
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    signalled = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error('shutdown took longer than 25 s; exiting');
      process.exit(1);
    }, 25_000);
    force.unref();
    void (postroom?.stop() ?? Promise.resolve()).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  try {
    postroom = await startPostroom(config, { log });
    if (signalled) await postroom.stop().then(() => process.exit(0));
  } catch (err) {
    // A role that finds its own configuration wrong (HOOKS_FILE, DRIVE_FOLDER_TEMPLATE) says so the
    // same way as start-up validation: one plain message naming each problem.
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    log.fatal({ err }, 'Postroom could not start');
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
