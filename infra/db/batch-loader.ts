import { TurnBatch } from '../turn-batch.js';

/** Most keys asked for in one statement. */
const MAX_KEYS = 100;

interface Ask<K, V> {
  key: K;
  resolve: (v: V | undefined) => void;
  reject: (e: unknown) => void;
}

/**
 * Reads rows by key for callers that ask at about the same time (the messages of one delivery burst,
 * each handled on its own) with one statement for all of them, `WHERE key IN (...)`, instead of one
 * each. The asks of one turn of the event loop go together (at most {@link MAX_KEYS} per statement).
 * A read is a read: each caller gets the row as it was committed when the statement ran, as it would
 * alone; when the statement fails, every caller of it gets the error.
 */
export class BatchLoader<K, V> {
  private readonly asks = new TurnBatch<Ask<K, V>>((asks) => this.flush(asks));

  /** `load` reads the rows of the keys it is given, keyed by them (a missing one is absent). */
  constructor(private readonly load: (keys: K[]) => Promise<Map<K, V>>) {}

  /** The row of `key`, or undefined when there is none. */
  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => this.asks.add({ key, resolve, reject }));
  }

  private flush(asks: Ask<K, V>[]): void {
    const keys = [...new Set(asks.map((a) => a.key))];
    for (let at = 0; at < keys.length; at += MAX_KEYS) {
      const part = new Set(keys.slice(at, at + MAX_KEYS));
      const mine = asks.filter((a) => part.has(a.key));
      this.load([...part]).then(
        (rows) => mine.forEach((a) => a.resolve(rows.get(a.key))),
        (err: unknown) => mine.forEach((a) => a.reject(err)),
      );
    }
  }
}
