import { Type, type Static } from '@sinclair/typebox';
import { defineEvent, Nullable, Uuid } from './envelope.js';

/** `attachment.uploaded`: an accepted attachment was filed (or found already filed) in Drive or local storage. */
export const AttachmentUploadedV1 = defineEvent({
  type: 'attachment.uploaded',
  version: 1,
  exchange: 'mail',
  description:
    'An accepted attachment reached its final Drive state: uploaded, skipped (same bytes already there) or failed.',
  data: Type.Object(
    {
      attachmentId: Uuid,
      emailId: Uuid,
      status: Type.Union([Type.Literal('uploaded'), Type.Literal('skipped'), Type.Literal('failed')]),
      fileId: Nullable(Type.String()),
      link: Nullable(Type.String()),
      folder: Type.String({ description: 'Folder path under the root' }),
      backend: Type.Union([Type.Literal('drive'), Type.Literal('local')]),
    },
    { additionalProperties: false },
  ),
  example: {
    attachmentId: '0192f6a0-0000-7000-8000-0000000000b1',
    emailId: '0192f6a0-0000-7000-8000-0000000000aa',
    status: 'uploaded',
    fileId: '1AbCdEf',
    link: 'https://drive.google.com/file/d/1AbCdEf/view',
    folder: '2026/11/ana@example.com',
    backend: 'drive',
  },
});
/** The `attachment.uploaded` v1 envelope. */
export type AttachmentUploadedV1 = Static<typeof AttachmentUploadedV1.schema>;
