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
  /** null (not converted), `pending`, `converted`, `failed`. */
  conversion_status: string | null;
  /** Why the conversion ended as it did, in words. */
  conversion_reason: string | null;
  /** `local` or `gotenberg`: which converter made the PDF. */
  conversion_converter: string | null;
  /** SHA-256 of the converted PDF in the blob store. */
  pdf_sha256: string | null;
  pdf_size: number | null;
  /** Name the PDF is filed under (the original's base name, `.pdf`). */
  pdf_filename: string | null;
  converted_at: Date | null;
  /** null (no PDF), `pending`, `uploaded`, `skipped`, `failed`: the PDF's own filing. */
  pdf_drive_status: string | null;
  pdf_drive_file_id: string | null;
  pdf_drive_link: string | null;
  pdf_uploaded_at: Date | null;
  created_at: Date;
}
