/**
 * The hooks the outbound role calls, as it registered them at its last start (migration
 * `20261203T0800-honest-done`). Whoever publishes an event of an email records the calls these hooks
 * will make in the same transaction, so the email is not `done` before its calls exist.
 */
export interface HooksTable {
  /** Hook name from HOOKS_FILE. */
  name: string;
  /** JSON array of the event types the hook is called for. */
  events: string;
  /** When the outbound role registered it (UTC). */
  registered_at: Date;
}
