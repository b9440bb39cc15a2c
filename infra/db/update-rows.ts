import { sql, type Kysely, type Transaction, type Updateable } from 'kysely';
import type { Database } from './tables/index.js';
import { batchState, type BatchWork } from './batch-scope.js';
import { TurnBatch } from '../turn-batch.js';

/** Tables keyed by a string `id`. */
type ById = {
  [T in keyof Database]: Database[T] extends { id: string } ? T : never;
}[keyof Database];

/** One row's new values, with its id. */
export type RowUpdate<T extends ById> = { id: string } & Updateable<Database[T]>;

/**
 * Sets each row's own values with one statement:
 * `UPDATE t JOIN (SELECT ? AS id, ? AS a ... UNION ALL SELECT ?, ? ...) v ON t.id = v.id SET t.a = v.a`,
 * instead of an UPDATE per row (MySQL and MariaDB alike). Every row must set the same columns; rows
 * are grouped by the columns they set, one statement per group. Ids not in the table change nothing;
 * an id given twice gets its later values.
 */
export async function updateRows<T extends ById>(
  trx: Transaction<Database>,
  table: T,
  rows: readonly RowUpdate<T>[],
): Promise<void> {
  // Undefined values are left out, as Kysely's set() leaves them: alone or batched, a row sets the same.
  const defined = rows.map(
    (row) => Object.fromEntries(Object.entries(row).filter(([, v]) => v !== undefined)) as RowUpdate<T>,
  );
  const last = new Map(defined.map((row) => [row.id, row])); // one row set twice: the later values win
  const groups = new Map<string, RowUpdate<T>[]>();
  for (const row of last.values()) {
    const key = Object.keys(row).sort().join(',');
    const group = groups.get(key);
    if (group) group.push(row);
    else groups.set(key, [row]);
  }
  for (const group of groups.values()) {
    // Key order, as the rows' locks are taken: two batches never wait on each other in a circle.
    group.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const columns = Object.keys(group[0]!)
      .filter((c) => c !== 'id')
      .sort();
    if (columns.length === 0) continue;
    const values = (row: RowUpdate<T>) => ['id', ...columns].map((c) => (row as Record<string, unknown>)[c]);
    const selects = group.map((row, i) =>
      i === 0
        ? sql`SELECT ${sql.join(values(row).map((v, j) => sql`${v} AS ${sql.ref(j === 0 ? 'id' : columns[j - 1]!)}`))}`
        : sql`SELECT ${sql.join(values(row).map((v) => sql`${v}`))}`,
    );
    await sql`UPDATE ${sql.table(table)} AS t JOIN (${sql.join(selects, sql` UNION ALL `)}) AS v ON t.id = v.id SET ${sql.join(
      columns.map((c) => sql`${sql.ref(`t.${c}`)} = ${sql.ref(`v.${c}`)}`),
    )}`.execute(trx);
  }
}

/** The row updates of a batch of commits, per table, made at its end with {@link updateRows}. */
const BATCH_UPDATES: BatchWork<Map<ById, RowUpdate<ById>[]>> = {
  stage: 0,
  start: () => new Map(),
  finish: async (trx, byTable) => {
    for (const [table, rows] of byTable) await updateRows(trx, table, rows);
  },
};

/**
 * Sets a row's values by id in `trx`: at once (one UPDATE) for a message committed alone; in a batch's
 * transaction (`CommitBatcher`), with the other rows the batch sets in that table, in one statement
 * at the batch's end, before anything that reads them (stage 0). Use where nothing in the commit
 * depends on the number of rows changed.
 */
export async function updateRow<T extends ById>(
  trx: Transaction<Database>,
  table: T,
  row: RowUpdate<T>,
): Promise<void> {
  const batch = batchState(trx, BATCH_UPDATES);
  if (batch) {
    const rows = batch.get(table) ?? [];
    batch.set(table, rows);
    rows.push(row as RowUpdate<ById>);
    return;
  }
  const { id, ...values } = row as { id: string } & Record<string, unknown>;
  await trx
    .updateTable(table as 'attachments')
    .set(values)
    .where('id', '=', id)
    .execute();
}

/**
 * Sets rows' values by id for callers that write at about the same time (the files of one burst of
 * deliveries reserving their Drive ids), with one statement and one commit for those of one turn of
 * the event loop, instead of an autocommitted UPDATE each. Each caller's promise settles when the
 * commit does: resolved once its row is durable, rejected with the error of a failed commit.
 */
export class RowWriter<T extends ById> {
  private readonly writes = new TurnBatch<{
    row: RowUpdate<T>;
    resolve: () => void;
    reject: (err: unknown) => void;
  }>((writes) => {
    this.db
      .transaction()
      .execute((trx) =>
        updateRows(
          trx,
          this.table,
          writes.map((w) => w.row),
        ),
      )
      .then(
        () => writes.forEach((w) => w.resolve()),
        (err: unknown) => writes.forEach((w) => w.reject(err)),
      );
  });

  constructor(
    private readonly db: Kysely<Database>,
    private readonly table: T,
  ) {}

  set(row: RowUpdate<T>): Promise<void> {
    return new Promise((resolve, reject) => this.writes.add({ row, resolve, reject }));
  }
}
