import { Type } from '@sinclair/typebox';
import { SECRET_HEADER, TelegramUpdateBody, WEBHOOK_BODY_LIMIT } from './telegram-webhook.js';

const errorRef = { $ref: '#/components/schemas/Error' };
const error = (description: string) => ({
  description,
  content: { 'application/json': { schema: errorRef } },
});

/** What the webhook adds to the OpenAPI document. */
export const webhookOpenApi = {
  schemas: {
    TelegramUpdate: TelegramUpdateBody,
    TelegramWebhookAnswer: Type.Object(
      {
        ok: Type.Literal(true),
        duplicate: Type.Boolean({ description: 'True when this update_id was accepted before' }),
      },
      { additionalProperties: false },
    ),
  },
  paths: {
    '/telegram/webhook': {
      post: {
        summary: 'Telegram Bot API webhook: one Update per call',
        description:
          `Called by Telegram. Checks ${SECRET_HEADER} against TELEGRAM_WEBHOOK_SECRET, records the update ` +
          `id and publishes the update as a telegram.update event; a repeated update_id is answered 200 and ` +
          `published once. Bodies over ${WEBHOOK_BODY_LIMIT} are refused.`,
        tags: ['telegram'],
        security: [],
        parameters: [
          {
            name: SECRET_HEADER,
            in: 'header',
            required: true,
            description: 'The secret_token given to setWebhook (TELEGRAM_WEBHOOK_SECRET)',
            schema: { type: 'string' },
          },
        ],
        requestBody: {
          required: true,
          content: { 'application/json': { schema: { $ref: '#/components/schemas/TelegramUpdate' } } },
        },
        responses: {
          '200': {
            description: 'Accepted (or accepted before)',
            content: {
              'application/json': { schema: { $ref: '#/components/schemas/TelegramWebhookAnswer' } },
            },
          },
          '400': error('Not JSON, or not an Update'),
          '401': error('Missing or wrong secret header; nothing was published'),
          '413': error('Body too large'),
          '503': error('The database is unavailable; Telegram sends the update again'),
        },
      },
    },
  },
};
