import { Type, type TSchema } from '@sinclair/typebox';

/** The JSON error body every route answers with on failure. */
const ErrorSchema = Type.Object(
  { error: Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false }) },
  { additionalProperties: false, $id: 'Error' },
);

/** A JSON answer in OpenAPI form. */
const jsonResponse = (description: string, schema: TSchema) => ({
  description,
  content: { 'application/json': { schema } },
});

const errorResponse = (
  description: string,
  headers?: Record<string, { description: string; schema: unknown }>,
) => ({
  ...jsonResponse(description, { $ref: '#/components/schemas/Error' } as unknown as TSchema),
  ...(headers ? { headers } : {}),
});

/** Error answers shared by the routes of every role, as `#/components/responses/<name>`. */
const errorResponses = {
  BadRequest: errorResponse('A parameter breaks its schema (code VALIDATION.FAILED), or a bad cursor'),
  Unauthorized: errorResponse('Missing or wrong bearer token, or an expired or invalid JWT', {
    'WWW-Authenticate': { description: 'Bearer challenge (RFC 6750)', schema: { type: 'string' } },
  }),
  NotFound: errorResponse('No such resource'),
  Conflict: errorResponse('The resource is not in a state that allows this (for example already replayed)'),
  PayloadTooLarge: errorResponse('The request body is over the limit'),
  TooManyRequests: errorResponse('Rate limit of this token reached', {
    'Retry-After': { description: 'Seconds to wait', schema: { type: 'integer' } },
  }),
  InternalError: errorResponse('Unexpected failure (details are in the log, under the X-Request-Id)'),
  Unavailable: errorResponse('MySQL or RabbitMQ is unavailable; try again'),
};

/** Paths every process serves. */
const publicPaths = {
  '/healthz': {
    get: {
      summary: 'Liveness: the process is up',
      tags: ['operations'],
      security: [],
      responses: {
        '200': jsonResponse(
          'Alive',
          Type.Object({ status: Type.Literal('ok'), uptimeSeconds: Type.Integer() }),
        ),
      },
    },
  },
  '/readyz': {
    get: {
      summary: 'Readiness: RabbitMQ and MySQL answer (and IMAP when the poller runs here)',
      tags: ['operations'],
      security: [],
      responses: {
        '200': jsonResponse(
          'Ready',
          Type.Object({
            status: Type.Literal('ready'),
            checks: Type.Record(Type.String(), Type.Object({ ok: Type.Boolean() })),
          }),
        ),
        '503': jsonResponse(
          'A dependency is down',
          Type.Object({
            status: Type.Literal('not ready'),
            checks: Type.Record(Type.String(), Type.Object({ ok: Type.Boolean() })),
          }),
        ),
      },
    },
  },
  '/metrics': {
    get: {
      summary: 'Prometheus metrics',
      tags: ['operations'],
      security: [],
      responses: {
        '200': {
          description: 'Prometheus text format',
          content: { 'text/plain': { schema: { type: 'string' } } },
        },
      },
    },
  },
};

/** Builds the OpenAPI 3.1 document from the public paths and those the roles add. */
export function buildOpenApi(
  extra: { paths?: Record<string, unknown>; schemas?: Record<string, unknown> } = {},
): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Postroom',
      version: '1',
      description:
        'Status API of Postroom, the event-driven mail room: every email traced through every stage.',
    },
    servers: [{ url: '/' }],
    tags: [
      { name: 'operations', description: 'Probes and metrics (no auth)' },
      { name: 'emails', description: 'Every email and what happened to it' },
      { name: 'attachments', description: 'Attachments, their verdicts, filing and thumbnails' },
      { name: 'stats', description: 'Counts, queue depths and ages' },
      { name: 'dead-letters', description: 'Parked messages and their replay' },
      { name: 'console', description: 'The operator console: HTML pages behind a session cookie' },
      { name: 'jobs', description: 'Scheduled jobs, their runs, and running one now' },
    ],
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'A token of API_TOKENS, or an HS256 JWT with exp when JWT_SECRET is set',
        },
        consoleSession: {
          type: 'apiKey',
          in: 'cookie',
          name: 'postroom-console',
          description:
            'Operator console session (`__Host-postroom-console` over HTTPS), made by POST /console/sign-in',
        },
      },
      schemas: { Error: ErrorSchema, ...(extra.schemas ?? {}) },
      responses: errorResponses,
    },
    security: [{ bearer: [] }],
    paths: { ...publicPaths, ...(extra.paths ?? {}) },
  };
}
