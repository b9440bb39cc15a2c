import type { Transaction } from 'kysely';
import type { AnyEvent } from '../../contracts/index.js';
import { isDuplicateKey, type Database, type Db } from '../db/database.js';
import { gatherTimeline } from '../db/repositories/timeline.repository.js';
import { inBatchScope } from '../db/batch-scope.js';
import { DUPLICATE, type Emit } from './handler.js';
import { enqueueEvents, signalOutbox } from './outbox.js';

/** What a handler commits: its writes, given the transaction and a way to stage events. */
export type CommitFn<R> = (trx: Transaction<Database>, emit: Emit) => Promise<R>;

interface Pending {
  eventId: string;
  fn: CommitFn<unknown>;
  resolve: (result: unknown) => void;
  reject: (err: unknown) => void;
}

/** Marker thrown inside a commit transaction to roll it back when the inbox already has the event. */
class AlreadyProcessed extends Error {}

/** Options of a {@link CommitBatcher}. */
export interface CommitBatcherOptions {
  /** Most messages per transaction (default 32). */
  maxBatch?: number;
  /** How long the first commit of a batch waits for others to join it (ms, default 3). */
  windowMs?: number;
  /** Batch transactions in flight at once (default 2). */
  maxConcurrent?: number;
}

/**
 * Commits the `ctx.commit` work of several messages of one consumer in ONE transaction: one multi-row
 * inbox INSERT, each message's writes in turn, one multi-row outbox INSERT, one COMMIT, instead of a
 * transaction (BEGIN, inbox, outbox, COMMIT) per message. Work the messages share is done once for
 * the batch after the last of them (`batch-scope.ts`): their row updates in one statement per table
 * (`updateRow`), the closing of their emails in three (`completeEmailIfFinal`). Commits that arrive
 * within `windowMs` of the first one, up to `maxBatch`, share a transaction; each caller gets its own
 * result.
 *
 * The guarantees of a lone commit hold for each message: its inbox row, its writes and its events
 * commit together or not at all. When a batch fails for any reason (one message's writes throw, a
 * deadlock, an event already in the inbox), it is rolled back as a whole and each of its messages is
 * committed again alone, in its own transaction, so a failing message fails (and is retried or
 * parked by the runner) alone, never with its neighbours, and a repeat answers {@link DUPLICATE}
 * alone. Each commit function may therefore run twice: it must write only through the transaction
 * and stage events only through `emit` (the handlers' commit functions do; a consumer opts in with
 * `batchCommits`).
 */
export class CommitBatcher {
  private readonly queue: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running = 0;
  private readonly maxBatch: number;
  private readonly windowMs: number;
  private readonly maxConcurrent: number;

  constructor(
    private readonly db: Db,
    private readonly consumer: string,
    options: CommitBatcherOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 32;
    this.windowMs = options.windowMs ?? 3;
    this.maxConcurrent = options.maxConcurrent ?? 2;
  }

  /** Commits `fn` with the event's inbox row; resolves with its result, or `DUPLICATE` for a repeat. */
  commit<R>(eventId: string, fn: CommitFn<R>): Promise<R | typeof DUPLICATE> {
    return new Promise((resolve, reject) => {
      this.queue.push({
        eventId,
        fn,
        resolve: resolve as (r: unknown) => void,
        reject,
      });
      this.kick();
    });
  }

  private kick(): void {
    if (this.queue.length === 0 || this.running >= this.maxConcurrent) return;
    if (this.queue.length >= this.maxBatch) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      void this.flush();
      return;
    }
    this.timer ??= setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, this.windowMs);
  }

  private async flush(): Promise<void> {
    const batch = this.queue.splice(0, this.maxBatch);
    if (batch.length === 0) return;
    this.running += 1;
    try {
      if (batch.length === 1) await this.alone(batch[0]!);
      else await this.together(batch);
    } finally {
      this.running -= 1;
      this.kick();
    }
  }

  /** One transaction for the whole batch; on any failure, each message alone. */
  private async together(batch: Pending[]): Promise<void> {
    let results: unknown[];
    let events: AnyEvent[];
    try {
      ({ results, events } = await this.db.transaction().execute(async (trx) => {
        const processedAt = new Date();
        await trx
          .insertInto('inbox')
          .values(
            batch.map((p) => ({ consumer: this.consumer, event_id: p.eventId, processed_at: processedAt })),
          )
          .execute();
        const out: unknown[] = [];
        const staged: AnyEvent[] = [];
        // The batch's timeline entries go in one INSERT, as its inbox rows and events do, and work the
        // messages share (closing their emails) is done once for the batch, after the last of them.
        await gatherTimeline(trx, () =>
          inBatchScope(trx, async () => {
            for (const p of batch) out.push(await p.fn(trx, (e) => staged.push(e)));
          }),
        );
        await enqueueEvents(trx, staged);
        return { results: out, events: staged };
      }));
    } catch {
      // Whoever failed, fails alone: every message is committed again in its own transaction.
      await Promise.all(batch.map((p) => this.alone(p)));
      return;
    }
    if (events.length > 0) signalOutbox();
    batch.forEach((p, i) => p.resolve(results[i]));
  }

  /** The transaction of one message: its inbox row first, so a repeat rolls back before any write. */
  private async alone(p: Pending): Promise<void> {
    const staged: AnyEvent[] = [];
    try {
      const result = await this.db.transaction().execute(async (trx) => {
        try {
          await trx
            .insertInto('inbox')
            .values({ consumer: this.consumer, event_id: p.eventId, processed_at: new Date() })
            .execute();
        } catch (err) {
          if (isDuplicateKey(err)) throw new AlreadyProcessed();
          throw err;
        }
        const r = await p.fn(trx, (e) => staged.push(e));
        await enqueueEvents(trx, staged);
        return r;
      });
      if (staged.length > 0) signalOutbox();
      p.resolve(result);
    } catch (err) {
      if (err instanceof AlreadyProcessed) p.resolve(DUPLICATE);
      else p.reject(err);
    }
  }
}
