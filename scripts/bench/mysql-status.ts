import { createConnection } from 'mysql2';

/**
 * What the MySQL server did during a phase, from `SHOW GLOBAL STATUS` before and after. The counters
 * are server-wide: anything else using the server meanwhile (other people's tests) is counted too.
 */
export interface MysqlActivity {
  /** Row lock waits, and the time spent in them (ms), e.g. inserts queued behind another transaction. */
  rowLockWaits: number;
  rowLockTimeMs: number;
  commits: number;
  /** Statements received. */
  queries: number;
  /** fsyncs InnoDB issued (redo log and data files): about one per commit unless commits were grouped. */
  dataFsyncs: number;
}

const NAMES = [
  'Innodb_row_lock_waits',
  'Innodb_row_lock_time',
  'Com_commit',
  'Questions',
  'Innodb_data_fsyncs',
];

/** The counters now. */
export async function mysqlStatus(serverUrl: string): Promise<Record<string, number>> {
  const conn = createConnection({ uri: serverUrl }).promise();
  try {
    const [rows] = await conn.query(
      `SHOW GLOBAL STATUS WHERE Variable_name IN (${NAMES.map(() => '?').join(',')})`,
      NAMES,
    );
    return Object.fromEntries(
      (rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, Number(r.Value)]),
    );
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/** The difference of two readings. */
export function mysqlActivity(a: Record<string, number>, b: Record<string, number>): MysqlActivity {
  const d = (k: string) => (b[k] ?? 0) - (a[k] ?? 0);
  return {
    rowLockWaits: d('Innodb_row_lock_waits'),
    rowLockTimeMs: d('Innodb_row_lock_time'),
    commits: d('Com_commit'),
    queries: d('Questions'),
    dataFsyncs: d('Innodb_data_fsyncs'),
  };
}
