/**
 * A budget of bytes shared by the messages a consumer handles at once. A consumer takes many small
 * messages together (large batches are what make a backlog cheap) but must not take many large ones:
 * twelve 25 MiB attachments analysed at once would hold gigabytes. Each message takes the bytes it
 * will hold before its work and gives them back after; a message that does not fit waits, in arrival
 * order, so a large one is not overtaken forever by small ones. A message larger than the whole
 * budget runs when nothing else holds any, alone.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiting: Array<{ bytes: number; grant: () => void }> = [];

  constructor(readonly limit: number) {
    if (!(limit > 0)) throw new RangeError(`a byte budget must be positive, got ${limit}`);
  }

  /** Bytes held now. */
  get held(): number {
    return this.used;
  }

  /** Waits until `bytes` fit, takes them, and resolves with the function that gives them back (once). */
  async take(bytes: number): Promise<() => void> {
    const n = Math.max(0, bytes);
    if (this.waiting.length === 0 && this.fits(n)) this.used += n;
    else await new Promise<void>((grant) => this.waiting.push({ bytes: n, grant }));
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.used -= n;
      this.next();
    };
  }

  /** Runs `fn` holding `bytes` of the budget. */
  async with<T>(bytes: number, fn: () => Promise<T>): Promise<T> {
    const give = await this.take(bytes);
    try {
      return await fn();
    } finally {
      give();
    }
  }

  private fits(n: number): boolean {
    return this.used === 0 || this.used + n <= this.limit;
  }

  private next(): void {
    for (let w = this.waiting[0]; w && this.fits(w.bytes); w = this.waiting[0]) {
      this.waiting.shift();
      this.used += w.bytes;
      w.grant();
    }
  }
}
