import type { Generated } from 'kysely';

/** Events waiting to leave (transactional outbox); a row is written in the same transaction as the data. */
export interface OutboxTable {
  /** Insertion order; the relay publishes in this order. */
  id: Generated<number>;
  /** The envelope id (unique: the same event is never queued twice). */
  event_id: string;
  /** Full exchange name, namespace included. */
  exchange: string;
  /** Routing key (the event type). */
  routing_key: string;
  /** The envelope as JSON text. */
  body: string;
  /** Correlation id, for logs. */
  correlation_id: string;
  created_at: Date;
  /** When the broker confirmed it; null while pending. */
  sent_at: Date | null;
}
