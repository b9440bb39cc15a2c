import { Type, type Static } from '@sinclair/typebox';
import { defineEvent, Nullable, Sha256, Uuid } from './envelope.js';

/** How a conversion ended: a PDF, or a reason why not. */
export const ConversionStatus = Type.Union([Type.Literal('converted'), Type.Literal('failed')]);

/**
 * `attachment.converted`: an accepted office document was converted to PDF (or the conversion failed
 * for good). The PDF is in the blob store under `pdf.sha256`; the Drive consumer files it next to the
 * original. A failure never holds up the email: the original is filed all the same.
 */
export const AttachmentConvertedV1 = defineEvent({
  type: 'attachment.converted',
  version: 1,
  exchange: 'mail',
  description:
    'An office document was converted to PDF (or failed to be, with the reason); the PDF is filed next to the original.',
  data: Type.Object(
    {
      attachmentId: Uuid,
      emailId: Uuid,
      sha256: Sha256,
      status: ConversionStatus,
      reason: Type.String({ maxLength: 2000, description: 'What happened, in words a user understands' }),
      converter: Type.Union([Type.Literal('local'), Type.Literal('gotenberg')]),
      pdf: Nullable(
        Type.Object(
          {
            sha256: Sha256,
            size: Type.Integer({ minimum: 1, description: 'Bytes' }),
            filename: Type.String({
              minLength: 1,
              description: 'Name it is filed under: the original base name, .pdf',
            }),
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
    status: 'converted',
    reason: 'Converted to a 2-page PDF by LibreOffice',
    converter: 'local',
    pdf: { sha256: 'b'.repeat(64), size: 48213, filename: 'report.pdf' },
    thumbnailSha256: 'c'.repeat(64),
  },
});
/** The `attachment.converted` v1 envelope. */
export type AttachmentConvertedV1 = Static<typeof AttachmentConvertedV1.schema>;
