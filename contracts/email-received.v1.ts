import { Type, type Static } from '@sinclair/typebox';
import { defineEvent, Nullable, Timestamp, Uuid } from './envelope.js';

/** `email.received`: an email (or a file sent to the Telegram bot) was recorded with all its attachments. */
export const EmailReceivedV1 = defineEvent({
  type: 'email.received',
  version: 1,
  exchange: 'mail',
  description: 'An email was committed with its attachments; one attachment.stored follows per attachment.',
  data: Type.Object(
    {
      emailId: Uuid,
      messageId: Type.String({
        minLength: 1,
        maxLength: 998,
        description: 'Message-ID without angle brackets',
      }),
      source: Type.Union([
        Type.Literal('imap'),
        Type.Literal('telegram'),
        Type.Literal('file'),
        Type.Literal('drive'),
      ]),
      subject: Type.String({ maxLength: 2000 }),
      from: Type.String({ maxLength: 998, description: 'Sender address, lower case' }),
      receivedAt: Timestamp,
      attachmentCount: Type.Integer({ minimum: 0 }),
      warnings: Type.Array(Type.String()),
      chatId: Nullable(Type.String({ description: 'Telegram chat the file came from (source telegram)' })),
    },
    { additionalProperties: false },
  ),
  example: {
    emailId: '0192f6a0-0000-7000-8000-0000000000aa',
    messageId: 'CAF=abc@mail.example.com',
    source: 'imap',
    subject: 'Invoice 2026-11',
    from: 'ana@example.com',
    receivedAt: '2026-11-26T09:59:58.000Z',
    attachmentCount: 1,
    warnings: [],
    chatId: null,
  },
});
/** The `email.received` v1 envelope. */
export type EmailReceivedV1 = Static<typeof EmailReceivedV1.schema>;
