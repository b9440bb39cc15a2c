import { Type, type Static } from '@sinclair/typebox';
import { defineEvent, Nullable, Sha256, Uuid } from './envelope.js';

/** `api.polled`: a `poll` job called its API and stored the answer. */
export const ApiPolledV1 = defineEvent({
  type: 'api.polled',
  version: 1,
  exchange: 'jobs',
  description:
    'A poll job got an answer from its API. `changed` tells whether the body differs from the previous answer; hooks may subscribe to it.',
  data: Type.Object(
    {
      job: Type.String({ minLength: 1, maxLength: 100 }),
      runId: Uuid,
      url: Type.String({ description: 'The URL polled, without its query (queries often carry keys)' }),
      statusCode: Type.Integer({ minimum: 100, maximum: 599 }),
      contentType: Nullable(Type.String()),
      sha256: Sha256,
      size: Type.Integer({ minimum: 0, description: 'Bytes of the body kept (at most 1 MiB)' }),
      truncated: Type.Boolean({ description: 'True when the body was longer than 1 MiB and cut there' }),
      changed: Type.Boolean(),
      previousSha256: Nullable(Sha256),
    },
    { additionalProperties: false },
  ),
  example: {
    job: 'rates',
    runId: '0192f6a0-0000-7000-8000-0000000000b1',
    url: 'https://api.example/rates',
    statusCode: 200,
    contentType: 'application/json',
    sha256: 'a'.repeat(64),
    size: 812,
    truncated: false,
    changed: true,
    previousSha256: null,
  },
});
/** The `api.polled` v1 envelope. */
export type ApiPolledV1 = Static<typeof ApiPolledV1.schema>;
