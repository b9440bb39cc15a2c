import type { Generated } from 'kysely';

/** Every stage an email went through, for the status API. */
export interface TimelineTable {
  id: Generated<number>;
  email_id: string;
  at: Date;
  /** `ingest`, `analysis`, `drive`, `outbound`, `notify`, ... */
  stage: string;
  /** What happened (an event type or a short verb). */
  event: string;
  /** Optional detail (attachment id, verdict, error). */
  detail: string | null;
}
