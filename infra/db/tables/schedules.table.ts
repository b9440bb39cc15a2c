/**
 * One job of SCHEDULES_FILE as the schedulers share it (migration `20261203T0930-scheduler`). The
 * scheduler that claims a due time moves `next_due_at` forward under `FOR UPDATE SKIP LOCKED`, in the
 * transaction that records the run and enqueues `schedule.fired`.
 */
export interface SchedulesTable {
  /** Job name from SCHEDULES_FILE. */
  name: string;
  /** `poll`, `digest` or `backup`. */
  kind: string;
  /** Cron expression as written. */
  schedule: string;
  /** IANA time zone of the expression. */
  timezone: string;
  /** `skip`, `once` or `all`. */
  misfire: string;
  /** The next due time not yet claimed (UTC); null when the expression never matches again. */
  next_due_at: Date | null;
  /** 0 once the job is no longer in SCHEDULES_FILE (its history stays). */
  active: number;
  created_at: Date;
  updated_at: Date;
}

/** One run of a job: one due time, a catch-up of missed ones, or a run asked for through the API. */
export interface JobRunsTable {
  /** UUID of the run; also the `runId` of its `schedule.fired` event. */
  id: string;
  job: string;
  kind: string;
  /** The due time it stands for (UTC); null for a run asked for by hand. Unique with `job`. */
  due_at: Date | null;
  /** `schedule`, `catch-up` (a missed due time) or `manual`. */
  trigger: string;
  /** `queued`, `running`, `succeeded` or `failed`. */
  status: string;
  /** What the run did, or why it failed (no secrets). */
  detail: string | null;
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  /** Touched every few seconds while running: a run whose process died stops touching it. */
  heartbeat_at: Date | null;
}

/** What one `poll` run got back. */
export interface PollsTable {
  run_id: string;
  job: string;
  polled_at: Date;
  /** HTTP status; null when there was no answer. */
  status_code: number | null;
  content_type: string | null;
  /** SHA-256 of the body (up to 1 MiB), kept in the blob store; null without an answer. */
  body_sha256: string | null;
  body_size: number | null;
  /** 1 when the body differs from the previous answered poll of the job. */
  changed: number;
  /** Why there was no answer. */
  error: string | null;
}

/** One digest sent (or being sent) to one chat for one digest run. */
export interface DigestsTable {
  id: string;
  job: string;
  chat_id: string;
  run_id: string;
  /** Start of the period summarized (the previous digest's `until`); null for a chat's first digest. */
  since: Date | null;
  /** End of the period summarized. */
  until: Date;
  /** `pending`, `sent` or `failed`. */
  status: string;
  telegram_message_id: number | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
}
