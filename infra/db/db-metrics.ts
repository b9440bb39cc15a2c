import type { LogEvent } from 'kysely';
import type { Pool } from 'mysql2';
import { Gauge, Histogram } from 'prom-client';
import { registry } from '../metrics.js';

/**
 * The pools of this process, for the in-use and waiting gauges. mysql2 exposes no counts, so they are
 * read from its queues (`_allConnections`, `_freeConnections`, `_connectionQueue`, stable since
 * mysql2 1.x); a release that renames them reads as 0, never throws.
 */
const pools = new Set<Pool>();

interface PoolInternals {
  _allConnections?: { length: number };
  _freeConnections?: { length: number };
  _connectionQueue?: { length: number };
}

function sumOver(read: (p: PoolInternals) => number): number {
  let n = 0;
  for (const p of pools) n += read(p as unknown as PoolInternals);
  return n;
}

/** Connections handed out by the pools and not yet released. */
export const poolInUse = new Gauge({
  name: 'postroom_db_pool_connections_in_use',
  help: 'MySQL connections in use (taken from the pool, not yet released)',
  registers: [registry],
  collect() {
    this.set(sumOver((p) => (p._allConnections?.length ?? 0) - (p._freeConnections?.length ?? 0)));
  },
});

/** Callers waiting for a connection because the pool is exhausted. */
export const poolWaiting = new Gauge({
  name: 'postroom_db_pool_waiting',
  help: 'Callers waiting for a MySQL connection (pool exhausted)',
  registers: [registry],
  collect() {
    this.set(sumOver((p) => p._connectionQueue?.length ?? 0));
  },
});

/** Time from asking the pool for a connection to getting one. */
export const poolAcquireSeconds = new Histogram({
  name: 'postroom_db_pool_acquire_seconds',
  help: 'Time to get a MySQL connection from the pool',
  buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
  registers: [registry],
});

/** Query time by statement kind, so a dashboard can show the database's share of handler time. */
export const queryDurationSeconds = new Histogram({
  name: 'postroom_db_query_duration_seconds',
  help: 'MySQL statement time as Kysely measures it, by statement kind and outcome',
  labelNames: ['kind', 'outcome'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
  registers: [registry],
});

const KINDS = new Set(['select', 'insert', 'update', 'delete', 'replace']);

/** `select`, `insert`, `update`, `delete`, `replace`, or `other` (DDL, locks, `SET`...). */
export function statementKind(sql: string): string {
  const word = /^\s*(?:\(\s*)*([a-z]+)/i.exec(sql)?.[1]?.toLowerCase() ?? '';
  return KINDS.has(word) ? word : 'other';
}

/** Kysely's `log` hook: every query's time into `queryDurationSeconds`. */
export function observeQuery(event: LogEvent): void {
  queryDurationSeconds.observe(
    { kind: statementKind(event.query.sql), outcome: event.level === 'error' ? 'error' : 'ok' },
    event.queryDurationMillis / 1000,
  );
}

/**
 * What Kysely's MysqlDialect is given instead of the pool itself: the same pool, with the time to
 * acquire each connection measured and the pool counted in the gauges until it is ended.
 */
export function instrumentPool(pool: Pool): {
  getConnection: Pool['getConnection'];
  end: (cb: (err: unknown) => void) => void;
} {
  pools.add(pool);
  return {
    getConnection(cb) {
      const started = performance.now();
      pool.getConnection((err, conn) => {
        poolAcquireSeconds.observe((performance.now() - started) / 1000);
        cb(err, conn);
      });
    },
    end(cb) {
      pools.delete(pool);
      pool.end(cb);
    },
  };
}
