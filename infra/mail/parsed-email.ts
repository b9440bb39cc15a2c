import type { EmailFacts, RecordedAttachment } from '../db/repositories/emails.repository.js';

/**
 * What the MIME parser hands to the poller: the facts of one email and its attachments, whose bytes
 * are already in the blob store. Shared contract between `mime-parser.ts` and the producers that read mail; it is
 * the `EmailFacts` that `recordEmail` records, with what only the parser knows.
 */

/** One attachment, inline image or forwarded message found in an email. */
export type ParsedAttachment = RecordedAttachment;

/** One parsed email. */
export interface ParsedEmail extends EmailFacts {
  /** Message-ID without angle brackets; a stable synthetic `<sha256>@postroom.invalid` when missing. */
  messageId: string;
  /** True when messageId was made up from the content. */
  syntheticMessageId: boolean;
  /** Decoded subject ('' when none). */
  subject: string;
  /** First From address, lower case ('' when none). */
  from: string;
  /** The Date header, or null when missing or unreadable. */
  date: Date | null;
  /** Attachments in document order; a forwarded message comes before its own attachments. */
  attachments: ParsedAttachment[];
  /** Human-readable problems found while parsing (malformed MIME, bad base64, truncated parts...). */
  warnings: string[];
}
