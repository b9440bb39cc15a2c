import { isDuplicateKey, type Db } from '../db/database.js';

interface Pending {
  eventId: string;
  resolve: (duplicate: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * Records events a handler finished without a transaction of its own (`ctx.commit` never called) in
 * its consumer's inbox, many per INSERT: a group commit. Entries wait for the end of the current turn
 * of the event loop, then go out in one multi-row INSERT; while a few INSERTs run, new entries gather
 * for the next one, so the batch grows with the load and a lone message still waits for one round trip. One commit per
 * message held a consumer to the database's commit rate, far below what RabbitMQ delivers.
 *
 * Each caller learns whether its event was already there (a repeat): a batch meeting a duplicate key
 * fails as a whole (one statement), and is then written a row at a time to tell which. Repeats are
 * rare: redeliveries are looked up before the handler runs.
 */
export class InboxWriter {
  private readonly queue: Pending[] = [];
  private scheduled = false;
  private running = 0;

  /**
   * @param maxBatch most rows per INSERT
   * @param maxConcurrent INSERTs in flight at once: a few, so that a small batch does not wait behind
   *   a slow one and a consumer with a small prefetch keeps its messages moving
   */
  constructor(
    private readonly db: Db,
    private readonly consumer: string,
    private readonly maxBatch = 500,
    private readonly maxConcurrent = 4,
  ) {}

  /** Resolves once the event is in the inbox: `true` when it was there already. */
  record(eventId: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.queue.push({ eventId, resolve, reject });
      this.kick();
    });
  }

  /** Starts a flush at the end of this turn of the event loop, unless one is due or enough run. */
  private kick(): void {
    if (this.scheduled || this.running >= this.maxConcurrent || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.queue.splice(0, this.maxBatch);
    if (batch.length === 0) return;
    this.running += 1;
    try {
      const repeats = await this.write(batch.map((p) => p.eventId));
      batch.forEach((p, i) => p.resolve(repeats[i] ?? false));
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.running -= 1;
      this.kick();
    }
  }

  private async write(eventIds: string[]): Promise<boolean[]> {
    const processedAt = new Date();
    const row = (eventId: string) => ({
      consumer: this.consumer,
      event_id: eventId,
      processed_at: processedAt,
    });
    try {
      await this.db.insertInto('inbox').values(eventIds.map(row)).execute();
      return eventIds.map(() => false);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
    const repeats: boolean[] = [];
    for (const eventId of eventIds) {
      try {
        await this.db.insertInto('inbox').values(row(eventId)).execute();
        repeats.push(false);
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        repeats.push(true);
      }
    }
    return repeats;
  }
}
