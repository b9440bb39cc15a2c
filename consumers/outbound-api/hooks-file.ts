import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { isEventType, type EventType } from '../../contracts/index.js';
import { SUBSCRIPTIONS } from '../../infra/broker/subscriptions.js';
import { ConfigError } from '../../infra/errors.js';
import { readJsonConfigFile } from '../../infra/json-config-file.js';

/** Event types a hook may name: the ones the `outbound-api` queue is bound to. */
export const HOOKABLE_EVENTS: readonly EventType[] = SUBSCRIPTIONS['outbound-api'];

/** Methods a hook may use; each carries the event envelope as its body. */
export const HOOK_METHODS = ['POST', 'PUT', 'PATCH'] as const;

/** Bounds of `timeoutMs` and its default, in milliseconds. */
export const HOOK_TIMEOUT_MS = { min: 100, max: 120_000, default: 10_000 } as const;

/** Bounds of `maxRetryHours` and its default: how long a failing call is retried before it is parked. */
export const HOOK_MAX_RETRY_HOURS = { min: 0.01, max: 720, default: 24 } as const;

/** Headers Postroom sets itself; a hook may not override them. */
const RESERVED_HEADERS = new Set([
  'idempotency-key',
  'x-postroom-signature',
  'x-postroom-event',
  'content-type',
  'content-length',
  'transfer-encoding',
  'host',
  'connection',
]);

/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** One entry of HOOKS_FILE as written (SPEC.md, "Outbound calls"). */
export const HookEntrySchema = Type.Object(
  {
    name: Type.String({
      minLength: 1,
      maxLength: 100,
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
      description: 'Unique name: letters, digits, dot, dash, underscore; recorded with every call',
    }),
    url: Type.String({ minLength: 1, maxLength: 2048, description: 'Absolute http or https URL to call' }),
    events: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      uniqueItems: true,
      description: 'Event types that trigger the call',
    }),
    method: Type.Optional(
      Type.String({ enum: [...HOOK_METHODS], description: 'HTTP method (default POST)' }),
    ),
    headers: Type.Optional(
      Type.Record(Type.String(), Type.String({ maxLength: 8192 }), {
        description: 'Extra request headers (an API key, say)',
      }),
    ),
    secret: Type.Optional(
      Type.String({ minLength: 1, description: 'HMAC-SHA256 key of X-Postroom-Signature; unsigned without' }),
    ),
    timeoutMs: Type.Optional(
      Type.Integer({
        minimum: HOOK_TIMEOUT_MS.min,
        maximum: HOOK_TIMEOUT_MS.max,
        description: 'Hard limit of one attempt, DNS to last byte (default 10000)',
      }),
    ),
    maxRetryHours: Type.Optional(
      Type.Number({
        minimum: HOOK_MAX_RETRY_HOURS.min,
        maximum: HOOK_MAX_RETRY_HOURS.max,
        description:
          'How long 5xx, 429 and network errors are retried, from the first attempt, before the call fails and its message is parked (default 24)',
      }),
    ),
    when: Type.Optional(
      Type.Record(Type.String({ minLength: 1 }), Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
        description:
          'Only events whose data has these values: { "changed": true } calls on api.polled only when the answer changed',
      }),
    ),
  },
  { additionalProperties: false },
);
type HookEntry = Static<typeof HookEntrySchema>;

/** HOOKS_FILE as a whole: a JSON array of hooks. */
export const HooksFileSchema = Type.Array(HookEntrySchema, { maxItems: 1000 });

/** One validated hook, defaults applied, frozen. */
export interface Hook {
  /** Unique name, recorded in `calls.hook`. */
  readonly name: string;
  /** The URL as written (already checked: http or https, no credentials). */
  readonly url: string;
  /** Event types that trigger the call. */
  readonly events: readonly EventType[];
  /** `POST` (default), `PUT` or `PATCH`. */
  readonly method: (typeof HOOK_METHODS)[number];
  /** Extra headers, sent as given. */
  readonly headers: Readonly<Record<string, string>>;
  /** Signing key, or null for unsigned calls. */
  readonly secret: string | null;
  /** Hard limit of one attempt in milliseconds. */
  readonly timeoutMs: number;
  /** Hours a retryable failure is retried, from the first attempt of the call. */
  readonly maxRetryHours: number;
  /** Fields of the event's `data` that must have these values for the call to be made; null: every event. */
  readonly when: Readonly<Record<string, string | number | boolean>> | null;
}

/** True when the event's data has every value the hook's `when` asks for. */
export function hookMatches(hook: Pick<Hook, 'when'>, data: unknown): boolean {
  if (!hook.when) return true;
  const d = (data ?? {}) as Record<string, unknown>;
  return Object.entries(hook.when).every(([k, v]) => d[k] === v);
}

const validate = new Ajv({ allErrors: true, strict: true }).compile<HookEntry[]>(HooksFileSchema);

/** `HOOKS_FILE[0].url` from an ajv instance path `/0/url`. */
function where(instancePath: string): string {
  const parts = instancePath.split('/').slice(1);
  let out = 'HOOKS_FILE';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : `.${p.replace(/~1/g, '/').replace(/~0/g, '~')}`;
  return out;
}

/** Problems of a hook URL: parseable, http or https, no user or password in it. */
export function urlProblems(url: string): string[] {
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
 * Checks what the schema cannot: URLs, event names, unique names, header names and values. Runs on
 * raw content too (fields of the wrong type are left to the schema), so one pass names everything.
 */
function semanticProblems(entries: readonly unknown[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  entries.forEach((entry, i) => {
    if (typeof entry !== 'object' || entry === null) return;
    const h = entry as Partial<Record<keyof HookEntry, unknown>>;
    const at = `HOOKS_FILE[${i}]`;
    if (typeof h.name === 'string') {
      const first = seen.get(h.name.toLowerCase());
      if (first !== undefined)
        problems.push(`${at}.name: ${JSON.stringify(h.name)} is already used by HOOKS_FILE[${first}]`);
      else seen.set(h.name.toLowerCase(), i);
    }
    if (typeof h.url === 'string') for (const p of urlProblems(h.url)) problems.push(`${at}.url: ${p}`);
    if (Array.isArray(h.events))
      h.events.forEach((e: unknown, j) => {
        if (typeof e !== 'string') return;
        if (e === 'outbound.completed')
          problems.push(
            `${at}.events[${j}]: outbound.completed cannot trigger a hook (each call would trigger the next)`,
          );
        else if (!isEventType(e) || !HOOKABLE_EVENTS.includes(e))
          problems.push(
            `${at}.events[${j}]: unknown event type ${JSON.stringify(e)} (known: ${HOOKABLE_EVENTS.join(', ')})`,
          );
      });
    if (typeof h.headers === 'object' && h.headers !== null)
      for (const [name, value] of Object.entries(h.headers)) {
        if (!HEADER_NAME.test(name))
          problems.push(`${at}.headers: ${JSON.stringify(name)} is not a valid header name`);
        else if (RESERVED_HEADERS.has(name.toLowerCase()))
          problems.push(`${at}.headers.${name}: is set by Postroom and cannot be overridden`);
        if (typeof value === 'string' && /[\r\n\0]/.test(value))
          problems.push(`${at}.headers.${name}: must not contain line breaks or NUL`);
      }
  });
  return problems;
}

/**
 * Validates parsed HOOKS_FILE content and applies defaults. Throws one `ConfigError` naming every
 * problem as `HOOKS_FILE[i].field: why` (secrets and header values never appear in it).
 */
export function parseHooks(content: unknown): readonly Hook[] {
  if (!Array.isArray(content)) throw new ConfigError(['HOOKS_FILE: must be a JSON array of hooks']);
  const problems: string[] = [];
  if (!validate(content)) {
    for (const e of validate.errors ?? []) {
      const path = where(e.instancePath);
      if (e.keyword === 'additionalProperties')
        problems.push(`${path}: unknown field ${JSON.stringify(e.params['additionalProperty'])}`);
      else if (e.keyword === 'enum') problems.push(`${path}: must be one of ${HOOK_METHODS.join(', ')}`);
      else if (e.keyword === 'pattern' && path.endsWith('.name'))
        problems.push(
          `${path}: must start with a letter or digit and hold only letters, digits, ".", "-" and "_"`,
        );
      else problems.push(`${path}: ${e.message ?? 'is invalid'}`);
    }
  }
  problems.push(...semanticProblems(content));
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  const hooks = content as HookEntry[];
  return Object.freeze(
    hooks.map((h) =>
      Object.freeze({
        name: h.name,
        url: h.url,
        events: Object.freeze([...h.events] as EventType[]),
        method: (h.method ?? 'POST') as Hook['method'],
        headers: Object.freeze({ ...(h.headers ?? {}) }),
        secret: h.secret ?? null,
        timeoutMs: h.timeoutMs ?? HOOK_TIMEOUT_MS.default,
        maxRetryHours: h.maxRetryHours ?? HOOK_MAX_RETRY_HOURS.default,
        when: h.when ? Object.freeze({ ...h.when }) : null,
      }),
    ),
  );
}

/** Reads, parses and validates HOOKS_FILE; throws `ConfigError` when it cannot be used. */
export function loadHooksFile(path: string): readonly Hook[] {
  return parseHooks(readJsonConfigFile('HOOKS_FILE', path));
}
