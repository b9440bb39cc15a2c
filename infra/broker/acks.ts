import type { Channel, ConsumeMessage } from 'amqplib';

/**
 * Acknowledges one channel's deliveries in as few frames as it can. Messages finishing in the same
 * turn of the event loop are acked together at its end: the oldest unacknowledged deliveries that are
 * all finished go in one `basic.ack` with `multiple` set, and finished ones behind a message still in
 * work are acked one by one, so a slow message never holds the others' prefetch slots. Every frame is
 * a socket write, and a consumer with a large prefetch finishes messages in bursts.
 *
 * Each delivery tag is acked at most once (acking one twice closes the channel): a message leaves the
 * list of outstanding ones when acked, or when `forget` is told it was nacked.
 */
export class AckBatcher {
  /** Delivered and not yet acked or forgotten, in delivery order. */
  private readonly outstanding: ConsumeMessage[] = [];
  private readonly finished = new Set<ConsumeMessage>();
  private scheduled = false;

  constructor(
    private readonly channel: Channel,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** Called for each message as it is delivered. */
  delivered(msg: ConsumeMessage): void {
    this.outstanding.push(msg);
  }

  /** Marks a message for acking at the end of this turn of the event loop. */
  ack(msg: ConsumeMessage): void {
    this.finished.add(msg);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  /** Takes a message off the books without acking it (it was nacked or rejected). */
  forget(msg: ConsumeMessage): void {
    const i = this.outstanding.indexOf(msg);
    if (i >= 0) this.outstanding.splice(i, 1);
    this.finished.delete(msg);
  }

  /** Sends what is finished now (before the channel is closed on purpose). */
  flush(): void {
    try {
      let last: ConsumeMessage | null = null;
      while (this.outstanding.length > 0 && this.finished.has(this.outstanding[0]!)) {
        last = this.outstanding.shift()!;
        this.finished.delete(last);
      }
      if (last) this.channel.ack(last, true);
      if (this.finished.size === 0) return;
      for (const msg of this.finished) {
        this.channel.ack(msg);
        this.outstanding.splice(this.outstanding.indexOf(msg), 1);
      }
      this.finished.clear();
    } catch (err) {
      // The channel is gone: RabbitMQ redelivers what was not acked, and the inbox absorbs repeats.
      this.finished.clear();
      this.outstanding.length = 0;
      this.onError(err);
    }
  }
}
