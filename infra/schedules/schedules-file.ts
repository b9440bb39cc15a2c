import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { Cron } from 'croner';
import { ConfigError } from '../errors.js';
import { readJsonConfigFile } from '../json-config-file.js';

/** The kinds of scheduled job Postroom knows (SPEC.md, "Scheduled jobs"). */
export const JOB_KINDS = ['poll', 'digest', 'backup', 'retention'] as const;
/** One job kind. */
export type JobKind = (typeof JOB_KINDS)[number];

/** What happens to due times missed while no scheduler ran. */
export const MISFIRE_POLICIES = ['skip', 'once', 'all'] as const;
/** One misfire policy. */
export type MisfirePolicy = (typeof MISFIRE_POLICIES)[number];

/** Methods a `poll` job may use. */
export const POLL_METHODS = ['GET', 'POST', 'HEAD'] as const;

/** Bounds of a poll's `timeoutMs` and its default, in milliseconds (the outbound calls' bounds). */
export const POLL_TIMEOUT_MS = { min: 100, max: 120_000, default: 10_000 } as const;

/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** One entry of SCHEDULES_FILE as written. */
export const ScheduleEntrySchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 100,
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
      description: 'Unique name: letters, digits, dot, dash, underscore; used in /api/v1/jobs/{name}',
    }),
    kind: Type.String({ description: 'poll, digest, backup or retention' }),
    schedule: Type.String({ minLength: 1, maxLength: 200, description: '5-field cron expression' }),
    timezone: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: 'IANA time zone of the schedule (default UTC)',
      }),
    ),
    misfire: Type.Optional(
      Type.String({ enum: [...MISFIRE_POLICIES], description: 'skip (default), once or all' }),
    ),
    url: Type.Optional(Type.String({ minLength: 1, maxLength: 2048, description: 'poll: the URL to call' })),
    method: Type.Optional(
      Type.String({ enum: [...POLL_METHODS], description: 'poll: GET (default), POST, HEAD' }),
    ),
    headers: Type.Optional(
      Type.Record(Type.String(), Type.String({ maxLength: 8192 }), { description: 'poll: request headers' }),
    ),
    timeoutMs: Type.Optional(
      Type.Integer({
        minimum: POLL_TIMEOUT_MS.min,
        maximum: POLL_TIMEOUT_MS.max,
        description: 'poll: hard limit of one attempt (default 10000)',
      }),
    ),
    retries: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 5,
        description: 'poll: attempts after the first on 5xx, 429 or network errors (default 2)',
      }),
    ),
  },
  { additionalProperties: false },
);
type ScheduleEntry = Static<typeof ScheduleEntrySchema>;

/** SCHEDULES_FILE as a whole. */
export const SchedulesFileSchema = Type.Array(ScheduleEntrySchema, { maxItems: 1000 });

/** One validated scheduled job, defaults applied, frozen. */
export interface JobDefinition {
  /** Unique name. */
  readonly name: string;
  readonly kind: JobKind;
  /** The cron expression as written. */
  readonly schedule: string;
  /** IANA time zone the expression is read in. */
  readonly timezone: string;
  readonly misfire: MisfirePolicy;
  /** `poll` only: what to call. */
  readonly poll: {
    readonly url: string;
    readonly method: (typeof POLL_METHODS)[number];
    readonly headers: Readonly<Record<string, string>>;
    readonly timeoutMs: number;
    readonly retries: number;
  } | null;
}

/** Options of `parseSchedules`. */
export interface ParseOptions {
  /**
   * Accept 6-field expressions with seconds as well (tests run per-second schedules); SCHEDULES_FILE
   * itself takes the 5 fields of SPEC.md.
   */
  allowSeconds?: boolean;
}

const validate = new Ajv({ allErrors: true, strict: true }).compile<ScheduleEntry[]>(SchedulesFileSchema);

/** `SCHEDULES_FILE[0].url` from an ajv instance path `/0/url`. */
function where(instancePath: string): string {
  let out = 'SCHEDULES_FILE';
  for (const p of instancePath.split('/').slice(1))
    out += /^\d+$/.test(p) ? `[${p}]` : `.${p.replace(/~1/g, '/').replace(/~0/g, '~')}`;
  return out;
}

/** True when `tz` is an IANA time zone this runtime knows. */
function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The croner object for a definition (paused: it only computes times, it never runs anything). */
export function cronOf(def: Pick<JobDefinition, 'schedule' | 'timezone'>): Cron {
  return new Cron(def.schedule, { timezone: def.timezone, paused: true, mode: '5-or-6-parts' });
}

/** Problems of a cron expression: croner parses it, and (unless allowed) it has exactly 5 fields. */
function scheduleProblems(schedule: string, opts: ParseOptions): string[] {
  const fields = schedule.trim().split(/\s+/).length;
  if (fields !== 5 && !(opts.allowSeconds && fields === 6))
    return [
      `must be a 5-field cron expression (minute hour day-of-month month day-of-week), got ${fields} fields`,
    ];
  try {
    const next = cronOf({ schedule, timezone: 'UTC' }).nextRun(new Date('2026-01-01T00:00:00Z'));
    if (!next) return ['never matches a time'];
  } catch (err) {
    return [`is not a valid cron expression (${(err as Error).message.replace(/^CronPattern: /, '')})`];
  }
  return [];
}

/** What the schema cannot say: cron syntax, time zones, unique names, kind-specific fields. */
function semanticProblems(entries: readonly unknown[], opts: ParseOptions): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  entries.forEach((entry, i) => {
    if (typeof entry !== 'object' || entry === null) return;
    const e = entry as Partial<Record<keyof ScheduleEntry, unknown>>;
    const at = `SCHEDULES_FILE[${i}]`;
    if (typeof e.name === 'string') {
      const first = seen.get(e.name.toLowerCase());
      if (first !== undefined)
        problems.push(`${at}.name: ${JSON.stringify(e.name)} is already used by SCHEDULES_FILE[${first}]`);
      else seen.set(e.name.toLowerCase(), i);
    }
    if (typeof e.kind === 'string' && !(JOB_KINDS as readonly string[]).includes(e.kind))
      problems.push(`${at}.kind: unknown kind ${JSON.stringify(e.kind)} (known: ${JOB_KINDS.join(', ')})`);
    if (typeof e.schedule === 'string')
      for (const p of scheduleProblems(e.schedule, opts)) problems.push(`${at}.schedule: ${p}`);
    if (typeof e.timezone === 'string' && !isTimeZone(e.timezone))
      problems.push(
        `${at}.timezone: unknown time zone ${JSON.stringify(e.timezone)} (an IANA name such as Europe/Berlin)`,
      );
    const pollOnly = ['url', 'method', 'headers', 'timeoutMs', 'retries'] as const;
    if (e.kind === 'poll') {
      if (e.url === undefined) problems.push(`${at}.url: is required for kind poll`);
      else if (typeof e.url === 'string')
        for (const p of urlProblems(e.url)) problems.push(`${at}.url: ${p}`);
    } else if (typeof e.kind === 'string')
      for (const f of pollOnly)
        if (e[f] !== undefined)
          problems.push(`${at}.${f}: only a poll job takes ${f} (this one is ${e.kind})`);
    if (typeof e.headers === 'object' && e.headers !== null)
      for (const [name, value] of Object.entries(e.headers)) {
        if (!HEADER_NAME.test(name))
          problems.push(`${at}.headers: ${JSON.stringify(name)} is not a valid header name`);
        if (typeof value === 'string' && /[\r\n\0]/.test(value))
          problems.push(`${at}.headers.${name}: must not contain line breaks or NUL`);
      }
  });
  return problems;
}

/** Problems of a URL to poll: parseable, http or https, no user or password in it. */
function urlProblems(url: string): string[] {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return ['is not an absolute URL'];
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return [`must use http or https (got ${JSON.stringify(u.protocol.replace(/:$/, ''))})`];
  if (u.username || u.password) return ['must not carry a user name or password; put credentials in headers'];
  return [];
}

/**
 * Validates parsed SCHEDULES_FILE content and applies defaults. Throws one `ConfigError` naming every
 * problem as `SCHEDULES_FILE[i].field: why` (header values never appear in it).
 */
export function parseSchedules(content: unknown, opts: ParseOptions = {}): readonly JobDefinition[] {
  if (!Array.isArray(content)) throw new ConfigError(['SCHEDULES_FILE: must be a JSON array of jobs']);
  const problems: string[] = [];
  if (!validate(content))
    for (const e of validate.errors ?? []) {
      const path = where(e.instancePath);
      if (e.keyword === 'additionalProperties')
        problems.push(`${path}: unknown field ${JSON.stringify(e.params['additionalProperty'])}`);
      else if (e.keyword === 'enum')
        problems.push(`${path}: must be one of ${(e.params['allowedValues'] as string[]).join(', ')}`);
      else if (e.keyword === 'pattern' && path.endsWith('.name'))
        problems.push(
          `${path}: must start with a letter or digit and hold only letters, digits, ".", "-" and "_"`,
        );
      else problems.push(`${path}: ${e.message ?? 'is invalid'}`);
    }
  problems.push(...semanticProblems(content, opts));
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  return Object.freeze(
    (content as ScheduleEntry[]).map((e) =>
      Object.freeze({
        name: e.name,
        kind: e.kind as JobKind,
        schedule: e.schedule.trim(),
        timezone: e.timezone ?? 'UTC',
        misfire: (e.misfire ?? 'skip') as MisfirePolicy,
        poll:
          e.kind === 'poll' && e.url
            ? Object.freeze({
                url: e.url,
                method: (e.method ?? 'GET') as (typeof POLL_METHODS)[number],
                headers: Object.freeze({ ...(e.headers ?? {}) }),
                timeoutMs: e.timeoutMs ?? POLL_TIMEOUT_MS.default,
                retries: e.retries ?? 2,
              })
            : null,
      }),
    ),
  );
}

/** Reads, parses and validates SCHEDULES_FILE; throws `ConfigError` when it cannot be used. */
export function loadSchedulesFile(path: string, opts: ParseOptions = {}): readonly JobDefinition[] {
  return parseSchedules(readJsonConfigFile('SCHEDULES_FILE', path), opts);
}
