import { Type, type TSchema } from '@sinclair/typebox';

/** The jobs API's schemas: they validate requests and describe answers in the OpenAPI document. */

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const DateTime = Type.String({ format: 'date-time', description: 'ISO-8601 timestamp, UTC' });

/** Path parameter `{name}` of a job. */
export const JobNameParams = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 100,
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
      description: 'Job name from SCHEDULES_FILE',
    }),
  },
  { additionalProperties: false },
);

/** Query of `GET /api/v1/jobs`. */
export const JobListQuery = Type.Object(
  {
    runs: Type.Integer({
      minimum: 0,
      maximum: 100,
      default: 10,
      description: 'Last runs shown per job (newest first)',
    }),
  },
  { additionalProperties: false },
);

/** One run of a job. */
export const JobRun = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    trigger: Type.Union([Type.Literal('schedule'), Type.Literal('catch-up'), Type.Literal('manual')]),
    dueAt: Nullable(DateTime),
    status: Type.Union([
      Type.Literal('queued'),
      Type.Literal('running'),
      Type.Literal('succeeded'),
      Type.Literal('failed'),
    ]),
    detail: Nullable(Type.String({ description: 'What the run did, or why it failed' })),
    queuedAt: DateTime,
    startedAt: Nullable(DateTime),
    finishedAt: Nullable(DateTime),
  },
  { additionalProperties: false },
);

/** One scheduled job. */
export const Job = Type.Object(
  {
    name: Type.String(),
    kind: Type.String({ description: 'poll, digest, backup or retention' }),
    schedule: Type.String({ description: 'Cron expression' }),
    timezone: Type.String(),
    misfire: Type.Union([Type.Literal('skip'), Type.Literal('once'), Type.Literal('all')]),
    active: Type.Boolean({ description: 'False once the job is no longer in SCHEDULES_FILE' }),
    nextDueAt: Nullable(DateTime),
    running: Type.Boolean({ description: 'A run is queued or running now' }),
    lastRuns: Type.Array(JobRun),
  },
  { additionalProperties: false },
);

/** `GET /api/v1/jobs`. */
export const JobList = Type.Object({ items: Type.Array(Job) }, { additionalProperties: false });

/** `POST /api/v1/jobs/{name}/run`. */
export const RunRequested = Type.Object(
  {
    job: Type.String(),
    runId: Type.String({ format: 'uuid' }),
    status: Type.Literal('queued'),
    message: Type.String(),
  },
  { additionalProperties: false },
);

/** Component schemas of the jobs API. */
export const jobComponentSchemas = { JobRun, Job, JobList, RunRequested };
