import type { AttachmentsTable } from './attachments.table.js';
import type { BlobChunksTable, BlobsTable } from './blobs.table.js';
import type { DeadLettersTable } from './dead-letters.table.js';
import type { DriveFoldersTable, DriveIntakeStateTable } from './drive.table.js';
import type { EmailsTable } from './emails.table.js';
import type { HooksTable } from './hooks.table.js';
import type { ImapCheckpointsTable } from './imap-checkpoints.table.js';
import type { InboxTable } from './inbox.table.js';
import type { CallAttemptsTable, CallsTable } from './outbound.table.js';
import type { OutboxTable } from './outbox.table.js';
import type { DigestsTable, JobRunsTable, PollsTable, SchedulesTable } from './schedules.table.js';
import type {
  NotificationsTable,
  TelegramChatsTable,
  TelegramFileSendsTable,
  TelegramUpdatesTable,
} from './telegram.table.js';
import type { TimelineTable } from './timeline.table.js';

/** Every table Postroom uses, for Kysely. */
export interface Database {
  outbox: OutboxTable;
  inbox: InboxTable;
  dead_letters: DeadLettersTable;
  blobs: BlobsTable;
  blob_chunks: BlobChunksTable;
  emails: EmailsTable;
  attachments: AttachmentsTable;
  timeline: TimelineTable;
  imap_checkpoints: ImapCheckpointsTable;
  drive_folders: DriveFoldersTable;
  calls: CallsTable;
  call_attempts: CallAttemptsTable;
  hooks: HooksTable;
  notifications: NotificationsTable;
  telegram_chats: TelegramChatsTable;
  telegram_updates: TelegramUpdatesTable;
  telegram_file_sends: TelegramFileSendsTable;
  drive_intake_state: DriveIntakeStateTable;
  schedules: SchedulesTable;
  job_runs: JobRunsTable;
  polls: PollsTable;
  digests: DigestsTable;
}
