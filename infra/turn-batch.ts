/**
 * Gathers what is asked during one turn of the event loop and hands it all over at its end
 * (`setImmediate`): the messages of one delivery burst are handled side by side, each on its own, and
 * their asks of the same kind (rows to read, rows to write, locks to take) can then share one
 * statement. Asks made while `flush` runs go to the next turn.
 */
export class TurnBatch<T> {
  private items: T[] = [];

  constructor(private readonly flush: (items: T[]) => void) {}

  add(item: T): void {
    if (this.items.length === 0)
      setImmediate(() => {
        const items = this.items;
        this.items = [];
        this.flush(items);
      });
    this.items.push(item);
  }
}
