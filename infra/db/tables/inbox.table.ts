/** Event ids a consumer has applied (idempotent-consumer inbox), written in the same transaction as the effect. */
export interface InboxTable {
  /** Consumer name (one inbox per consumer). */
  consumer: string;
  /** The envelope id. */
  event_id: string;
  processed_at: Date;
}
