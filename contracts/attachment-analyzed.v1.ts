import { Type, type Static } from '@sinclair/typebox';
import { defineEvent, Nullable, Sha256, Uuid } from './envelope.js';

/** The verdict on one attachment. */
export const Verdict = Type.Union([
  Type.Literal('accepted'),
  Type.Literal('quarantined'),
  Type.Literal('rejected'),
]);

/** `attachment.analyzed`: the bytes of an attachment were looked at and judged. */
export const AttachmentAnalyzedV1 = defineEvent({
  type: 'attachment.analyzed',
  version: 1,
  exchange: 'mail',
  description: 'The verdict on one attachment, from its bytes: accepted ones go on to Drive.',
  data: Type.Object(
    {
      attachmentId: Uuid,
      emailId: Uuid,
      sha256: Sha256,
      verdict: Verdict,
      reason: Type.String({ maxLength: 2000, description: 'Why, in words a user understands' }),
      detectedType: Nullable(Type.String({ description: 'MIME type found in the bytes' })),
      image: Nullable(
        Type.Object(
          {
            width: Type.Integer({ minimum: 0 }),
            height: Type.Integer({ minimum: 0 }),
            format: Type.String(),
            orientation: Nullable(Type.Integer({ minimum: 1, maximum: 8 })),
          },
          { additionalProperties: false },
        ),
      ),
      thumbnailSha256: Nullable(Sha256),
    },
    { additionalProperties: false },
  ),
  example: {
    attachmentId: '0192f6a0-0000-7000-8000-0000000000b1',
    emailId: '0192f6a0-0000-7000-8000-0000000000aa',
    sha256: 'a'.repeat(64),
    verdict: 'accepted',
    reason: 'PDF document, as declared',
    detectedType: 'application/pdf',
    image: null,
    thumbnailSha256: null,
  },
});
/** The `attachment.analyzed` v1 envelope. */
export type AttachmentAnalyzedV1 = Static<typeof AttachmentAnalyzedV1.schema>;
