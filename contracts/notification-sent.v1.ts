import { Type, type Static } from '@sinclair/typebox';
import { defineEvent, Nullable, Uuid } from './envelope.js';

/** `notification.sent`: a Telegram chat was told about an email (or could not be). */
export const NotificationSentV1 = defineEvent({
  type: 'notification.sent',
  version: 1,
  exchange: 'effects',
  description: 'A Telegram notification for one email and one chat reached a final state.',
  data: Type.Object(
    {
      chatId: Type.String({ minLength: 1 }),
      emailId: Uuid,
      status: Type.Union([Type.Literal('sent'), Type.Literal('failed'), Type.Literal('unsubscribed')]),
      telegramMessageId: Nullable(Type.Integer()),
    },
    { additionalProperties: false },
  ),
  example: {
    chatId: '123456789',
    emailId: '0192f6a0-0000-7000-8000-0000000000aa',
    status: 'sent',
    telegramMessageId: 42,
  },
});
/** The `notification.sent` v1 envelope. */
export type NotificationSentV1 = Static<typeof NotificationSentV1.schema>;
