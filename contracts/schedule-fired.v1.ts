import { Type, type Static } from '@sinclair/typebox';
import { defineEvent, Nullable, Timestamp, Uuid } from './envelope.js';

/** `schedule.fired`: a scheduler claimed a due time of a job (or someone asked for a run). */
export const ScheduleFiredV1 = defineEvent({
  type: 'schedule.fired',
  version: 1,
  exchange: 'jobs',
  description:
    'A job of SCHEDULES_FILE is due: published once per due time (however many schedulers run), per catch-up of missed times, and per run asked for through POST /api/v1/jobs/{name}/run.',
  data: Type.Object(
    {
      runId: Uuid,
      job: Type.String({ minLength: 1, maxLength: 100 }),
      kind: Type.String({ minLength: 1, maxLength: 16 }),
      dueAt: Nullable(Timestamp),
      trigger: Type.Union([Type.Literal('schedule'), Type.Literal('catch-up'), Type.Literal('manual')]),
    },
    { additionalProperties: false },
  ),
  example: {
    runId: '0192f6a0-0000-7000-8000-0000000000b1',
    job: 'rates',
    kind: 'poll',
    dueAt: '2026-11-26T10:15:00.000Z',
    trigger: 'schedule',
  },
});
/** The `schedule.fired` v1 envelope. */
export type ScheduleFiredV1 = Static<typeof ScheduleFiredV1.schema>;
