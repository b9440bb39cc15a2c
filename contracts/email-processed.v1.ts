import { Type, type Static } from '@sinclair/typebox';
import { Verdict } from './attachment-analyzed.v1.js';
import { defineEvent, Nullable, Uuid } from './envelope.js';

/** `email.processed`: every attachment of an email is in a final state. */
export const EmailProcessedV1 = defineEvent({
  type: 'email.processed',
  version: 1,
  exchange: 'mail',
  description:
    'Every attachment of the email is final (uploaded, skipped as already filed, failed, or not-filed when quarantined or rejected); notifications and hooks follow.',
  data: Type.Object(
    {
      emailId: Uuid,
      messageId: Type.String({ minLength: 1 }),
      source: Type.Union([
        Type.Literal('imap'),
        Type.Literal('telegram'),
        Type.Literal('file'),
        Type.Literal('drive'),
      ]),
      subject: Type.String(),
      from: Type.String(),
      chatId: Nullable(Type.String()),
      attachments: Type.Array(
        Type.Object(
          {
            attachmentId: Uuid,
            filename: Type.String(),
            verdict: Verdict,
            reason: Type.String(),
            driveStatus: Type.Union([
              Type.Literal('uploaded'),
              Type.Literal('skipped'),
              Type.Literal('failed'),
              Type.Literal('not-filed'),
              Type.Literal('pending'),
            ]),
            link: Nullable(Type.String()),
            // Optional, and present only for an attachment that was converted (or failed to be): with
            // CONVERTER=off every email.processed stays byte for byte what it was, so this is an
            // addition to v1 rather than a v2 (a v2 would change every event, converter or not).
            conversion: Type.Optional(
              Type.Object(
                {
                  status: Type.Union([
                    Type.Literal('converted'),
                    Type.Literal('failed'),
                    Type.Literal('pending'),
                  ]),
                  reason: Type.String(),
                  pdfFilename: Nullable(Type.String()),
                  driveStatus: Nullable(
                    Type.Union([
                      Type.Literal('uploaded'),
                      Type.Literal('skipped'),
                      Type.Literal('failed'),
                      Type.Literal('pending'),
                    ]),
                  ),
                  link: Nullable(Type.String({ description: 'Where the PDF was filed' })),
                },
                { additionalProperties: false },
              ),
            ),
          },
          { additionalProperties: false },
        ),
      ),
    },
    { additionalProperties: false },
  ),
  example: {
    emailId: '0192f6a0-0000-7000-8000-0000000000aa',
    messageId: 'CAF=abc@mail.example.com',
    source: 'imap',
    subject: 'Invoice 2026-11',
    from: 'ana@example.com',
    chatId: null,
    attachments: [
      {
        attachmentId: '0192f6a0-0000-7000-8000-0000000000b1',
        filename: 'invoice.pdf',
        verdict: 'accepted',
        reason: 'PDF document, as declared',
        driveStatus: 'uploaded',
        link: 'https://drive.google.com/file/d/1AbCdEf/view',
      },
    ],
  },
});
/** The `email.processed` v1 envelope. */
export type EmailProcessedV1 = Static<typeof EmailProcessedV1.schema>;
