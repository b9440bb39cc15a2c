import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * The status API's schemas: the one source of truth. The same TypeBox objects validate requests
 * (ajv, in `validate.ts`), type the handlers (`Static<...>`) and describe the responses in the
 * OpenAPI document (`openapi-paths.ts`), where the tests check real answers against them.
 */

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Id = Type.String({ format: 'uuid', description: 'UUID' });
const DateTime = Type.String({ format: 'date-time', description: 'ISO-8601 timestamp, UTC' });
const Count = Type.Integer({ minimum: 0 });

/** `GET /api/v1/emails` query. */
export const EmailListQuery = Type.Object(
  {
    messageId: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1000,
        description: 'Message-ID, with or without its angle brackets',
      }),
    ),
    status: Type.Optional(
      Type.Union([Type.Literal('processing'), Type.Literal('done')], { description: 'Overall state' }),
    ),
    from: Type.Optional(
      Type.String({
        minLength: 2,
        maxLength: 320,
        description: 'Sender address (any case), or @domain for every sender of a domain',
      }),
    ),
    since: Type.Optional(
      Type.Union([Type.String({ format: 'date-time' }), Type.String({ format: 'date' })], {
        description:
          'Only emails received at or after this instant (ISO-8601; a date alone means its midnight UTC)',
      }),
    ),
    limit: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 20,
      description: 'Items per page (at most 100)',
    }),
    cursor: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 500,
        description: 'The nextCursor of the previous page, with the same filters',
      }),
    ),
  },
  { additionalProperties: false },
);
/** Parsed `GET /api/v1/emails` query. */
export type EmailListQuery = Static<typeof EmailListQuery>;

/** Path parameter `{id}` of emails, attachments and dead letters. */
export const IdParams = Type.Object({ id: Id }, { additionalProperties: false });

/** `GET /api/v1/attachments/{id}/content` query. */
export const ContentQuery = Type.Object(
  {
    unsafe: Type.Boolean({
      default: false,
      description: 'true: serve a quarantined file all the same, as application/octet-stream',
    }),
  },
  { additionalProperties: false },
);

/** `GET /api/v1/dead-letters` query. */
export const DeadLetterListQuery = Type.Object(
  {
    state: Type.Union([Type.Literal('parked'), Type.Literal('all')], {
      default: 'parked',
      description: 'parked: still waiting (default); all: replayed ones too',
    }),
    consumer: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'Only this consumer (drive-upload, ...)' }),
    ),
    limit: Type.Integer({
      minimum: 1,
      maximum: 100,
      default: 50,
      description: 'Items per page (at most 100)',
    }),
    cursor: Type.Optional(
      Type.String({ minLength: 1, maxLength: 500, description: 'The nextCursor of the previous page' }),
    ),
  },
  { additionalProperties: false },
);
/** Parsed `GET /api/v1/dead-letters` query. */
export type DeadLetterListQuery = Static<typeof DeadLetterListQuery>;

const Verdict = Type.Union(['pending', 'accepted', 'quarantined', 'rejected'].map((v) => Type.Literal(v)));
const DriveStatus = Type.Union(
  ['pending', 'uploaded', 'skipped', 'failed', 'not-filed'].map((v) => Type.Literal(v)),
);
const OverallStatus = Type.Union([Type.Literal('processing'), Type.Literal('done')], {
  description: 'done once every attachment, call and notification is in a final state',
});

/** One attachment with its analysis and filing. */
export const Attachment = Type.Object(
  {
    id: Id,
    emailId: Id,
    filename: Type.String({ description: 'Safe name as filed' }),
    originalFilename: Type.String({ description: 'Name as the sender gave it' }),
    size: Type.Integer({ minimum: 0, description: 'Bytes' }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    declaredType: Type.String({ description: 'MIME type the sender declared' }),
    detectedType: Nullable(
      Type.String({ description: 'MIME type found in the bytes (null until analysed, or unknown)' }),
    ),
    disposition: Type.Union([Type.Literal('attachment'), Type.Literal('inline')]),
    parentId: Nullable(
      Type.String({ description: 'The forwarded message (an attachment of the same email) it came from' }),
    ),
    verdict: Verdict,
    reason: Nullable(Type.String({ description: 'Why the verdict, in words (null while pending)' })),
    image: Nullable(
      Type.Object(
        { width: Type.Integer({ minimum: 0 }), height: Type.Integer({ minimum: 0 }), format: Type.String() },
        { additionalProperties: false },
      ),
    ),
    thumbnailUrl: Nullable(
      Type.String({ description: 'Path of the WebP thumbnail (images, and the first page of PDFs)' }),
    ),
    drive: Type.Object(
      {
        status: DriveStatus,
        fileId: Nullable(Type.String()),
        link: Nullable(Type.String()),
        folder: Nullable(Type.String({ description: 'Folder path under the root' })),
      },
      { additionalProperties: false },
    ),
    analyzedAt: Nullable(DateTime),
    uploadedAt: Nullable(DateTime),
    conversion: Nullable(
      Type.Object(
        {
          status: Type.Union(['pending', 'converted', 'failed'].map((v) => Type.Literal(v))),
          reason: Nullable(Type.String({ description: 'Why it ended so, in words (null while pending)' })),
          converter: Nullable(Type.String({ description: 'local (LibreOffice) or gotenberg' })),
          pdf: Nullable(
            Type.Object(
              {
                sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
                size: Type.Integer({ minimum: 0, description: 'Bytes' }),
                filename: Type.String({
                  description: 'Name it is filed under (the original base name, .pdf)',
                }),
                url: Type.String({ description: 'Path of the PDF (GET .../converted)' }),
                drive: Type.Object(
                  { status: DriveStatus, fileId: Nullable(Type.String()), link: Nullable(Type.String()) },
                  { additionalProperties: false },
                ),
              },
              { additionalProperties: false },
            ),
          ),
          convertedAt: Nullable(DateTime),
        },
        {
          additionalProperties: false,
          description:
            'Conversion of an office document to PDF; null when not converted (not an office document, or no converter)',
        },
      ),
    ),
  },
  { additionalProperties: false },
);

/** One email in a listing. */
export const EmailSummary = Type.Object(
  {
    id: Id,
    messageId: Type.String({ description: 'Message-ID without angle brackets' }),
    source: Type.String({
      description: 'imap, telegram, file (the drop folder, INBOX_DIR) or drive (the intake folder)',
    }),
    subject: Type.String(),
    from: Type.String({ description: 'Sender address, lower case' }),
    receivedAt: DateTime,
    recordedAt: DateTime,
    status: OverallStatus,
    attachmentCount: Count,
  },
  { additionalProperties: false },
);

/** A page of emails. */
export const EmailList = Type.Object(
  {
    items: Type.Array(EmailSummary),
    nextCursor: Nullable(
      Type.String({ description: 'Pass as cursor for the next page; null on the last page' }),
    ),
  },
  { additionalProperties: false },
);

/** One email in full: what happened to it, stage by stage. */
export const Email = Type.Object(
  {
    ...EmailSummary.properties,
    doneAt: Nullable(Type.String({ format: 'date-time', description: 'When every attachment became final' })),
    warnings: Type.Array(Type.String(), { description: 'Parsing problems' }),
    attachments: Type.Array(Attachment),
    calls: Type.Array(
      Type.Object(
        {
          hook: Type.String(),
          eventType: Type.String(),
          status: Type.String({ description: 'pending, succeeded or failed' }),
          attempts: Count,
          lastStatusCode: Nullable(Type.Integer()),
          lastError: Nullable(Type.String()),
          updatedAt: DateTime,
        },
        { additionalProperties: false },
      ),
    ),
    notifications: Type.Array(
      Type.Object(
        {
          chatId: Type.String(),
          status: Type.String({ description: 'pending, sent, failed or unsubscribed' }),
          attempts: Count,
          updatedAt: DateTime,
        },
        { additionalProperties: false },
      ),
    ),
    timeline: Type.Array(
      Type.Object(
        {
          at: DateTime,
          stage: Type.String({ description: 'ingest, analysis, drive, outbound, notify, dead-letter' }),
          event: Type.String(),
          detail: Nullable(Type.String()),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
/** One email in full. */
export type Email = Static<typeof Email>;

const StageStats = Type.Object(
  {
    counts: Type.Record(Type.String(), Count, { description: 'Items by state' }),
    oldestPendingSeconds: Nullable(
      Type.Number({ minimum: 0, description: 'Age of the oldest item waiting for this stage' }),
    ),
  },
  { additionalProperties: false },
);

const QueueDepth = Type.Object(
  {
    consumer: Type.String(),
    queue: Type.String(),
    declared: Type.Boolean({
      description: 'false until a process running this consumer has declared its queue',
    }),
    messages: Count,
    consumers: Count,
    retry: Type.Array(
      Type.Object(
        { tier: Count, delayMs: Count, queue: Type.String(), messages: Count },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

/** Counts, queue depths and ages. */
export const Stats = Type.Object(
  {
    generatedAt: DateTime,
    emails: StageStats,
    stages: Type.Object(
      {
        analysis: StageStats,
        drive: StageStats,
        outbound: StageStats,
        notify: StageStats,
      },
      { additionalProperties: false, description: 'null: that stage has no table in this database yet' },
    ),
    oldestPending: Nullable(
      Type.Object(
        { stage: Type.String(), since: DateTime, ageSeconds: Type.Number({ minimum: 0 }) },
        { additionalProperties: false },
      ),
    ),
    deadLetters: Type.Object({ parked: Count, replayed: Count }, { additionalProperties: false }),
    outbox: Type.Object(
      { pending: Count, oldestPendingSeconds: Nullable(Type.Number({ minimum: 0 })) },
      { additionalProperties: false },
    ),
    queues: Type.Union([Type.Array(QueueDepth), Type.Null()], {
      description: 'null while RabbitMQ does not answer',
    }),
    deadQueue: Nullable(
      Type.Object({ queue: Type.String(), messages: Count }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);
/** Counts, queue depths and ages. */
export type Stats = Static<typeof Stats>;

/** One parked message. */
export const DeadLetter = Type.Object(
  {
    id: Id,
    consumer: Type.String(),
    queue: Type.String(),
    eventId: Nullable(Type.String()),
    eventType: Nullable(Type.String()),
    correlationId: Nullable(Type.String({ description: 'The email id for mail events' })),
    reason: Type.String({ description: 'code: message' }),
    attempts: Count,
    parkedAt: DateTime,
    replayedAt: Nullable(DateTime),
  },
  { additionalProperties: false },
);

/** A page of dead letters, newest first. */
export const DeadLetterList = Type.Object(
  { items: Type.Array(DeadLetter), nextCursor: Nullable(Type.String()) },
  { additionalProperties: false },
);

/** What a replay did. */
export const ReplayResult = Type.Object(
  {
    id: Id,
    outcome: Type.Literal('requeued'),
    consumer: Type.String(),
    queue: Type.String({ description: 'Full queue name the message was put back on' }),
    eventId: Nullable(Type.String()),
    eventType: Nullable(Type.String()),
    replayedAt: DateTime,
    message: Type.String(),
  },
  { additionalProperties: false },
);

/** Component schemas, by name, for the OpenAPI document. */
export const componentSchemas = {
  Attachment,
  EmailSummary,
  EmailList,
  Email,
  Stats,
  DeadLetter,
  DeadLetterList,
  ReplayResult,
};
