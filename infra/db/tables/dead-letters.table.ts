/** Messages parked after too many attempts or because they were invalid; listed and replayed by the API. */
export interface DeadLettersTable {
  /** UUID of this dead letter. */
  id: string;
  /** `consumer:eventId` (or body hash): the same message parked twice updates one row. */
  dedupe_key: string;
  /** Consumer that gave up. */
  consumer: string;
  /** Queue the message came from (short name, without namespace). */
  queue: string;
  /** Envelope id when the body could be read. */
  event_id: string | null;
  /** Envelope type when the body could be read. */
  event_type: string | null;
  correlation_id: string | null;
  /** The raw message body (UTF-8 text; invalid bytes replaced). */
  body: string;
  /** AMQP headers as JSON. */
  headers: string;
  /** Why it was parked (`code: message`). */
  reason: string;
  /** Attempts made before parking. */
  attempts: number;
  parked_at: Date;
  /** Set when put back on its queue; null while parked. */
  replayed_at: Date | null;
}
