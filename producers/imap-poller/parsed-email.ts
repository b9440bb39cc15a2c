/**
 * What the MIME parser hands to the poller: the facts of one email and its attachments, whose bytes
 * are already in the blob store. Shared contract between `mime-parser.ts` and `imap-poller.ts`.
 */

/** One attachment, inline image or forwarded message found in an email. */
export interface ParsedAttachment {
  /** UUID chosen by the parser (so children of a forwarded message can point at their parent). */
  id: string;
  /** Id of the forwarded message (itself a ParsedAttachment with declaredType message/rfc822) it came from, or null. */
  parentId: string | null;
  /** Safe name as filed (no path separators or control characters, at most 255 bytes, never empty). */
  filename: string;
  /** The name as the sender wrote it (RFC 2047 / 2231 decoded), or '' when it had none. */
  originalFilename: string;
  /** Content-Type as declared, lower case, without parameters (application/octet-stream when absent). */
  declaredType: string;
  /** `inline` for parts with a Content-ID referenced as inline images, else `attachment`. */
  disposition: 'attachment' | 'inline';
  /** Content-ID without angle brackets, or null. */
  contentId: string | null;
  /** Decoded size in bytes (counted even when the bytes were not kept). */
  size: number;
  /** SHA-256 of the decoded bytes, hex (computed even when the bytes were not kept). */
  sha256: string;
  /** False when the part exceeded ATTACHMENT_MAX_BYTES: recorded, not stored, later rejected. */
  stored: boolean;
}

/** One parsed email. */
export interface ParsedEmail {
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
  /** Size of the raw message in bytes. */
  size: number;
  /** Attachments in document order; a forwarded message comes before its own attachments. */
  attachments: ParsedAttachment[];
  /** Human-readable problems found while parsing (malformed MIME, bad base64, truncated parts...). */
  warnings: string[];
}
