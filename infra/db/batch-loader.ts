/** Most keys asked for in one statement. */
const MAX_KEYS = 100;

/**
 * Reads rows by key for callers that ask at about the same time (the messages of one delivery burst,
 * each handled on its own) with one statement for all of them, `WHERE key IN (...)`, instead of one
 * each. The asks of one turn of the event loop go together (at most {@link MAX_KEYS} per statement).
 * A read is a read: each caller gets the row as it was committed when the statement ran, as it would
 * alone; when the statement fails, every caller of it gets the error.
 */
export class BatchLoader<K, V> {
  private waiting = new Map<
    K,
    Array<{ resolve: (v: V | undefined) => void; reject: (e: unknown) => void }>
  >();
  private scheduled = false;

  /** `load` reads the rows of the keys it is given, keyed by them (a missing one is absent). */
  constructor(private readonly load: (keys: K[]) => Promise<Map<K, V>>) {}

  /** The row of `key`, or undefined when there is none. */
  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      let callers = this.waiting.get(key);
      if (!callers) this.waiting.set(key, (callers = []));
      callers.push({ resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const asked = this.waiting;
    this.waiting = new Map();
    const keys = [...asked.keys()];
    for (let at = 0; at < keys.length; at += MAX_KEYS) {
      const part = keys.slice(at, at + MAX_KEYS);
      this.load(part).then(
        (rows) => {
          for (const key of part) for (const c of asked.get(key)!) c.resolve(rows.get(key));
        },
        (err: unknown) => {
          for (const key of part) for (const c of asked.get(key)!) c.reject(err);
        },
      );
    }
  }
}
