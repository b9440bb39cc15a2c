import { Type, type Static } from '@sinclair/typebox';
import { defineEvent, Nullable, Uuid } from './envelope.js';

/** `outbound.completed`: a hook call reached a final state. */
export const OutboundCompletedV1 = defineEvent({
  type: 'outbound.completed',
  version: 1,
  exchange: 'effects',
  description: 'An outbound hook call for one event finished: succeeded, or failed for good.',
  data: Type.Object(
    {
      hook: Type.String({ minLength: 1 }),
      sourceEventId: Uuid,
      emailId: Nullable(Uuid),
      status: Type.Union([Type.Literal('succeeded'), Type.Literal('failed')]),
      statusCode: Nullable(Type.Integer()),
      attempts: Type.Integer({ minimum: 1 }),
    },
    { additionalProperties: false },
  ),
  example: {
    hook: 'crm',
    sourceEventId: '0192f6a0-0000-7000-8000-000000000001',
    emailId: '0192f6a0-0000-7000-8000-0000000000aa',
    status: 'succeeded',
    statusCode: 200,
    attempts: 1,
  },
});
/** The `outbound.completed` v1 envelope. */
export type OutboundCompletedV1 = Static<typeof OutboundCompletedV1.schema>;
