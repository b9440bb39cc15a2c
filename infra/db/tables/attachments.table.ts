/** One attachment (or forwarded message, or inline image) of an email, with its analysis and filing. */
export interface AttachmentsTable {
  id: string;
  email_id: string;
  /** The forwarded message (itself an attachment row) this one came from. */
  parent_id: string | null;
  /** Order within the email. */
  seq: number;
  /** Safe name as filed. */
  filename: string;
  original_filename: string;
  size: number;
  sha256: string;
  /** 1 when the bytes are in the blob store (0 when over ATTACHMENT_MAX_BYTES). */
  stored: number;
  declared_type: string;
  detected_type: string | null;
  /** `attachment` or `inline`. */
  disposition: string;
  content_id: string | null;
  /** `pending`, `accepted`, `quarantined`, `rejected`. */
  verdict: string;
  reason: string | null;
  image_width: number | null;
  image_height: number | null;
  image_format: string | null;
  image_orientation: number | null;
  thumbnail_sha256: string | null;
  analyzed_at: Date | null;
  /** `pending`, `uploaded`, `skipped` (identical bytes already filed: this row carries that file), `failed`, or `not-filed` (quarantined or rejected). */
  drive_status: string;
  drive_file_id: string | null;
  drive_link: string | null;
  drive_folder: string | null;
  uploaded_at: Date | null;
  created_at: Date;
}
