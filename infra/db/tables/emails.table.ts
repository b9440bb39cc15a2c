/** One recorded email (or file sent to the Telegram bot). */
export interface EmailsTable {
  /** UUID, also the correlation id of its events. */
  id: string;
  /** Message-ID without angle brackets. */
  message_id: string;
  /** SHA-256 of the Message-ID: unique, so the same Message-ID twice is one email. */
  message_id_hash: string;
  /** `imap` or `telegram`. */
  source: string;
  subject: string;
  /** Sender address, lower case. */
  from_address: string;
  /** When the mail was received (the IMAP internal date, or the message's Date). */
  received_at: Date;
  /** `processing` or `done`. */
  status: string;
  /** JSON array of parsing warnings. */
  warnings: string;
  /** Size of the raw message in bytes. */
  size: number;
  attachment_count: number;
  /** IMAP origin, to apply IMAP_AFTER after the commit. */
  mailbox: string | null;
  uid: number | null;
  uid_validity: string | null;
  /** When IMAP_AFTER was applied (null while still to do). */
  imap_after_at: Date | null;
  /** Telegram chat the file came from. */
  chat_id: string | null;
  created_at: Date;
  done_at: Date | null;
}
