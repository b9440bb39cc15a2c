import { Type, type Static } from '@sinclair/typebox';
import { defineEvent, Nullable, Sha256, Uuid } from './envelope.js';

/** `attachment.stored`: an attachment's bytes are in the blob store (claim check: the event carries the hash). */
export const AttachmentStoredV1 = defineEvent({
  type: 'attachment.stored',
  version: 1,
  exchange: 'mail',
  description:
    'One attachment of a recorded email; its bytes are in the blob store under sha256 when stored is true.',
  data: Type.Object(
    {
      attachmentId: Uuid,
      emailId: Uuid,
      sha256: Sha256,
      size: Type.Integer({ minimum: 0, description: 'Bytes' }),
      stored: Type.Boolean({
        description: 'False when the bytes were over ATTACHMENT_MAX_BYTES and not kept',
      }),
      filename: Type.String({ minLength: 1, maxLength: 255, description: 'Safe name as filed' }),
      originalFilename: Type.String({ maxLength: 2000 }),
      declaredType: Type.String({ maxLength: 255 }),
      disposition: Type.Union([Type.Literal('attachment'), Type.Literal('inline')]),
      parentId: Nullable(Uuid),
    },
    { additionalProperties: false },
  ),
  example: {
    attachmentId: '0192f6a0-0000-7000-8000-0000000000b1',
    emailId: '0192f6a0-0000-7000-8000-0000000000aa',
    sha256: 'a'.repeat(64),
    size: 48213,
    stored: true,
    filename: 'invoice.pdf',
    originalFilename: 'invoice.pdf',
    declaredType: 'application/pdf',
    disposition: 'attachment',
    parentId: null,
  },
});
/** The `attachment.stored` v1 envelope. */
export type AttachmentStoredV1 = Static<typeof AttachmentStoredV1.schema>;
