import mysql from 'mysql2';

/** Statements of one kind (verb and table) the pipeline process sent, with their round-trip times. */
export interface SqlKind {
  /** `insert outbox`, `select inbox`, `select emails for update`, `begin`, `commit` ... */
  kind: string;
  count: number;
  /** Sum and maximum of the time from sending the statement to its answer (ms): server time and lock waits included. */
  totalMs: number;
  maxMs: number;
}

/** The trace installed in this process. */
export interface SqlTrace {
  reset(): void;
  snapshot(): SqlKind[];
}

/** Kinds of the statement texts seen last, so that tracing costs the traced process little CPU. */
const kinds = new Map<string, string>();

/** `verb table` of a statement, lower case (`select blob_chunks`, `insert outbox`, `commit`). */
export function sqlKind(sql: string): string {
  let kind = kinds.get(sql);
  if (kind === undefined) {
    kind = kindOf(sql);
    if (kinds.size >= 2000) kinds.clear(); // multi-row statements make a text per row count
    kinds.set(sql, kind);
  }
  return kind;
}

function kindOf(sql: string): string {
  const s = sql.trim().replace(/\s+/g, ' ').toLowerCase();
  const table = (re: RegExp) => re.exec(s)?.[1]?.replace(/`/g, '');
  if (s.startsWith('select')) {
    const fn = /^select (get_lock|release_lock)\(/.exec(s)?.[1];
    if (fn) return `select ${fn}`;
    const t = table(/ from `?([\w$]+)`?/);
    return `select ${t ?? '(no table)'}${/ for update\b/.test(s) ? ' for update' : ''}`;
  }
  const verb = /^(insert|update|delete|replace)\b/.exec(s)?.[1];
  if (verb === 'insert' || verb === 'replace') return `${verb} ${table(/ into `?([\w$]+)`?/) ?? '?'}`;
  if (verb === 'update') return `update ${table(/^update `?([\w$]+)`?/) ?? '?'}`;
  if (verb === 'delete') return `delete ${table(/ from `?([\w$]+)`?/) ?? '?'}`;
  return s
    .split(' ')
    .slice(0, /^(start|set)\b/.test(s) ? 2 : 1)
    .join(' ');
}

/**
 * Counts and times every statement any mysql2 connection of this process sends, by wrapping
 * `query` and `execute` on mysql2's connection prototype (the benchmark's pipeline process only:
 * production code is not touched). Kysely sends everything, `begin` and `commit` included, through
 * `query`.
 */
export function installSqlTrace(): SqlTrace {
  const stats = new Map<string, SqlKind>();
  let proto: Record<string, unknown> | null = mysql.Connection.prototype as unknown as Record<
    string,
    unknown
  >;
  while (proto && !Object.hasOwn(proto, 'query'))
    proto = Object.getPrototypeOf(proto) as Record<string, unknown> | null;
  if (!proto) throw new Error('mysql2 connection has no query method to trace');
  const owner = proto;
  for (const method of ['query', 'execute'] as const) {
    const original = owner[method] as (...args: unknown[]) => unknown;
    owner[method] = function traced(this: unknown, ...args: unknown[]) {
      const first = args[0] as string | { sql?: string } | undefined;
      const text = typeof first === 'string' ? first : (first?.sql ?? '');
      const kind = sqlKind(text);
      let s = stats.get(kind);
      if (!s) stats.set(kind, (s = { kind, count: 0, totalMs: 0, maxMs: 0 }));
      const entry = s;
      entry.count += 1;
      const at = args.findLastIndex((a) => typeof a === 'function');
      if (at >= 0) {
        const cb = args[at] as (...r: unknown[]) => unknown;
        const started = performance.now();
        args[at] = function timed(this: unknown, ...r: unknown[]) {
          const ms = performance.now() - started;
          entry.totalMs += ms;
          if (ms > entry.maxMs) entry.maxMs = ms;
          return cb.apply(this, r);
        };
      }
      return original.apply(this, args);
    };
  }
  return {
    reset: () => stats.clear(),
    snapshot: () => [...stats.values()].map((s) => ({ ...s })).sort((a, b) => b.count - a.count),
  };
}
