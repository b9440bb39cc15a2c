import { Type, type Static } from '@sinclair/typebox';
import { defineEvent } from './envelope.js';

/** `telegram.update`: one update Telegram sent to the webhook, as Telegram sent it. */
export const TelegramUpdateV1 = defineEvent({
  type: 'telegram.update',
  version: 1,
  exchange: 'telegram',
  description:
    'One Bot API Update received on the webhook (already checked for the secret and deduplicated by update_id).',
  data: Type.Object(
    {
      updateId: Type.Integer({ minimum: 0 }),
      // The Update object is Telegram's and grows over time: only its id is fixed here.
      update: Type.Object({ update_id: Type.Integer({ minimum: 0 }) }, { additionalProperties: true }),
    },
    { additionalProperties: false },
  ),
  example: {
    updateId: 912345678,
    update: { update_id: 912345678 },
  },
});
/** The `telegram.update` v1 envelope. */
export type TelegramUpdateV1 = Static<typeof TelegramUpdateV1.schema>;
