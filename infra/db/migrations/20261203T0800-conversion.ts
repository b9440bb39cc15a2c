import { sql, type Kysely } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations are frozen in time: they must not
   follow later changes of the Database type. */

/**
 * Document conversion on `attachments`: the conversion's state and reason, the PDF (by SHA-256, in the
 * blob store) and its own filing next to the original (reserved file id first, as for any upload).
 * All null for attachments that are not converted, which is every row written before this migration.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('attachments')
    .addColumn('conversion_status', 'varchar(16)')
    .addColumn('conversion_reason', 'text')
    .addColumn('conversion_converter', 'varchar(16)')
    .addColumn('pdf_sha256', 'char(64)')
    .addColumn('pdf_size', 'bigint')
    .addColumn('pdf_filename', 'varchar(255)')
    .addColumn('converted_at', sql`datetime(3)`)
    .addColumn('pdf_drive_status', 'varchar(16)')
    .addColumn('pdf_drive_file_id', 'varchar(128)')
    .addColumn('pdf_drive_link', 'text')
    .addColumn('pdf_uploaded_at', sql`datetime(3)`)
    .execute();
}

/** Drops the conversion columns. */
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('attachments')
    .dropColumn('conversion_status')
    .dropColumn('conversion_reason')
    .dropColumn('conversion_converter')
    .dropColumn('pdf_sha256')
    .dropColumn('pdf_size')
    .dropColumn('pdf_filename')
    .dropColumn('converted_at')
    .dropColumn('pdf_drive_status')
    .dropColumn('pdf_drive_file_id')
    .dropColumn('pdf_drive_link')
    .dropColumn('pdf_uploaded_at')
    .execute();
}
