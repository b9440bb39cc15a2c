import type { Transaction } from 'kysely';
import type { Database } from './tables/index.js';

/**
 * Work the commits of a batch share and do once, at the batch's end, over what each of them added
 * (closing the emails they touched, say): one set of statements for the batch instead of one per
 * message. `start` makes the state of a new batch; `finish` does the work in the batch's transaction.
 */
export interface BatchWork<T> {
  /** Finishing order: row updates (0) before the checks that read them (1); begun order within a stage. */
  stage: 0 | 1;
  start(): T;
  finish(trx: Transaction<Database>, state: T): Promise<void>;
}

/** The batch work begun so far, per open batch transaction (see {@link inBatchScope}). */
const scopes = new WeakMap<Transaction<Database>, Map<BatchWork<unknown>, unknown>>();

/**
 * The state of `work` for the batch `trx` belongs to, made on first use, or null when `trx` is not a
 * batch's transaction (a message committed alone): the caller then does its part of the work at once.
 */
export function batchState<T>(trx: Transaction<Database>, work: BatchWork<T>): T | null {
  const scope = scopes.get(trx);
  if (!scope) return null;
  if (!scope.has(work as BatchWork<unknown>)) scope.set(work as BatchWork<unknown>, work.start());
  return scope.get(work as BatchWork<unknown>) as T;
}

/**
 * Runs the commit functions of a batch (`fn`), then finishes the batch work they began, by stage and
 * in the order it was begun, in the same transaction. A finish runs outside the scope: what it calls
 * is done at once. When anything throws, the transaction rolls back with the work unfinished (the
 * batcher then commits each message alone, and each does its part at once).
 */
export async function inBatchScope<R>(trx: Transaction<Database>, fn: () => Promise<R>): Promise<R> {
  const scope = new Map<BatchWork<unknown>, unknown>();
  scopes.set(trx, scope);
  let result: R;
  try {
    result = await fn();
  } finally {
    scopes.delete(trx);
  }
  const begun = [...scope].sort(([a], [b]) => a.stage - b.stage); // a stable sort: begun order stays
  for (const [work, state] of begun) await work.finish(trx, state);
  return result;
}
