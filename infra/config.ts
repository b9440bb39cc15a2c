import { accessSync, constants, existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { ConfigError } from './errors.js';

/** The roles a process can run (`ROLES`). */
export const ALL_ROLES = [
  'imap',
  'inbox',
  'telegram',
  'analysis',
  'drive',
  'outbound',
  'notify',
  'api',
  'convert',
  'scheduler',
] as const;
/** One role name. */
export type Role = (typeof ALL_ROLES)[number];

const optionalString = (description: string) => Type.Optional(Type.String({ minLength: 1, description }));

/**
 * Every variable of SPEC.md, with its default and why it exists. This schema is the one reader of
 * `process.env`; `.env.example` documents the same names.
 */
export const ConfigSchema = Type.Object(
  {
    ROLES: Type.String({
      default: 'all',
      description:
        'Comma list of roles to run in this process: imap,inbox,telegram,analysis,drive,outbound,notify,api,convert,scheduler, or all',
    }),
    AMQP_URL: Type.String({
      default: 'amqp://guest:guest@127.0.0.1:5672',
      pattern: '^amqps?://',
      description: 'RabbitMQ URL (vhost in the path)',
    }),
    MYSQL_URL: Type.String({
      default: 'mysql://root@127.0.0.1:3306/postroom',
      pattern: '^mysql://[^/]+/[A-Za-z0-9_$]+',
      description: 'MySQL 8 or MariaDB 10.11 URL; the database is created if missing and migrated at start',
    }),
    HTTP_PORT: Type.Integer({
      default: 8080,
      minimum: 0,
      maximum: 65535,
      description: 'Port of the status API, docs, Telegram webhook and metrics',
    }),
    HTTP_TRUST_PROXY: Type.String({
      default: 'loopback',
      pattern: '^(true|false|[0-9]+|[A-Za-z0-9:./]+(\\s*,\\s*[A-Za-z0-9:./]+)*)$',
      description:
        'Proxies whose X-Forwarded-For gives the client address (Express trust proxy): loopback, uniquelocal, addresses or CIDRs (comma list), a hop count, true or false',
    }),
    API_TOKENS: optionalString('Comma list of bearer tokens for /api/*; none set: /api/* answers 401'),
    JWT_SECRET: optionalString('When set, HS256 JWTs signed with it are accepted as bearer tokens'),
    API_CORS_ORIGINS: Type.Optional(
      Type.String({
        pattern: '^(\\*|https?://[A-Za-z0-9.:\\[\\]-]+(\\s*,\\s*https?://[A-Za-z0-9.:\\[\\]-]+)*)$',
        description:
          'Comma list of browser origins (https://ops.example) allowed to call /api/* cross-origin, or *; CORS is off when unset',
      }),
    ),
    API_RATE_LIMIT_PER_MINUTE: Type.Integer({
      default: 600,
      minimum: 0,
      maximum: 1_000_000,
      description:
        'Requests per minute allowed to each API token (bursts up to the same number); 0 turns the limit off',
    }),
    MYSQL_TLS: Type.String({
      default: 'off',
      pattern: '^(off|required|verify)$',
      description:
        'TLS to MySQL: off, required (encrypted, certificate not checked), verify (encrypted, CA and host name checked)',
    }),
    MYSQL_TLS_CA: optionalString(
      "PEM file of the CA that signed MySQL's certificate (for MYSQL_TLS=verify; without it the system CAs are used)",
    ),
    AMQP_TLS_CA: optionalString(
      'PEM file of the CA for an amqps:// AMQP_URL (certificate and host name checked; without it the system CAs are used)',
    ),
    IMAP_HOST: optionalString('IMAP server; the poller is off when unset'),
    IMAP_PORT: Type.Integer({ default: 993, minimum: 1, maximum: 65535, description: 'IMAP port' }),
    IMAP_SECURE: Type.Boolean({ default: true, description: 'Use TLS from the first byte' }),
    IMAP_USER: optionalString('IMAP user name'),
    IMAP_PASSWORD: optionalString('IMAP password (or IMAP_ACCESS_TOKEN for XOAUTH2)'),
    IMAP_ACCESS_TOKEN: optionalString('OAuth2 access token for XOAUTH2 instead of a password'),
    IMAP_MAILBOX: Type.String({ default: 'INBOX', minLength: 1, description: 'Mailbox to watch' }),
    IMAP_AFTER: Type.String({
      default: 'seen',
      pattern: '^(seen|none|move:.+)$',
      description: 'What is done to a mail once it is safely recorded: seen, move:<folder>, none',
    }),
    IMAP_START: Type.Union([Type.Literal('all'), Type.Literal('new')], {
      default: 'all',
      description:
        'At the first start on a mailbox: all records every mail already in it, new only mail that arrives from then on',
    }),
    IMAP_POLL_SECONDS: Type.Integer({
      default: 60,
      minimum: 1,
      maximum: 3600,
      description: 'Poll period without IDLE, and the watchdog period',
    }),
    ATTACHMENT_MAX_BYTES: Type.Integer({
      default: 26_214_400,
      minimum: 1,
      maximum: 1_073_741_824,
      description: 'Larger attachments are recorded and rejected, never uploaded',
    }),
    IMAGE_MAX_PIXELS: Type.Integer({
      default: 100_000_000,
      minimum: 1,
      description: 'Images declaring more pixels are rejected without decoding',
    }),
    DRIVE_ROOT_FOLDER_ID: Type.String({
      default: 'root',
      minLength: 1,
      description: 'Drive folder under which files are filed',
    }),
    DRIVE_FOLDER_TEMPLATE: Type.String({
      default: '{yyyy}/{mm}/{from}',
      minLength: 1,
      description: 'Folders under the root, made on demand: {yyyy} {mm} {dd} {from} {from_domain} {subject}',
    }),
    GOOGLE_APPLICATION_CREDENTIALS: optionalString('Service-account key file (use a shared drive)'),
    DRIVE_CLIENT_ID: optionalString('OAuth client id (with DRIVE_CLIENT_SECRET and DRIVE_REFRESH_TOKEN)'),
    DRIVE_CLIENT_SECRET: optionalString('OAuth client secret'),
    DRIVE_REFRESH_TOKEN: optionalString('OAuth refresh token, scope drive.file'),
    DRIVE_ACCESS_TOKEN: optionalString('A ready bearer token for Drive (tests, external token brokers)'),
    DRIVE_API_URL: Type.String({
      default: 'https://www.googleapis.com/',
      pattern: '^https?://',
      description: 'Drive API root URL (tests, proxies); every call, uploads included, goes there',
    }),
    INBOX_DIR: Type.String({
      default: './data/inbox',
      description:
        "Drop folder: each .eml put here (or in its Maildir new/) is taken in once, like an IMAP mail, then moved to done/; '' turns it off",
    }),
    STORAGE_DIR: Type.String({
      default: './data/drive',
      minLength: 1,
      description: 'With no Google credentials at all, files are filed here in the same folder layout',
    }),
    RETENTION_DAYS: Type.Integer({
      default: 0,
      minimum: 0,
      maximum: 36500,
      description:
        '0 keeps attachment bytes in MySQL forever; otherwise a retention pass drops the bytes of filed attachments older than this, which are then served from Drive or STORAGE_DIR',
    }),
    DRIVE_INTAKE_FOLDER_ID: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]{1,128}$',
        description:
          'Files put in this Drive folder are taken in like attachments (source drive) and filed by the template (role drive)',
      }),
    ),
    DRIVE_INTAKE_POLL_SECONDS: Type.Integer({
      default: 60,
      minimum: 1,
      maximum: 3600,
      description: 'How often the Drive intake folder is looked at for changes',
    }),
    TELEGRAM_BOT_TOKEN: optionalString('Telegram bot token; Telegram roles are off when unset'),
    TELEGRAM_WEBHOOK_SECRET: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]{1,256}$',
        description: 'Required with a token; Telegram sends it in X-Telegram-Bot-Api-Secret-Token',
      }),
    ),
    TELEGRAM_API_URL: Type.String({
      default: 'https://api.telegram.org',
      pattern: '^https?://',
      description: 'Bot API root URL (tests, a local Bot API server)',
    }),
    TELEGRAM_PUBLIC_URL: Type.Optional(
      Type.String({
        pattern: '^https://',
        description: 'When set, setWebhook is called at start with the secret',
      }),
    ),
    TELEGRAM_ALLOWED_CHATS: Type.Optional(
      Type.String({
        pattern: '^\\s*-?\\d+(\\s*,\\s*-?\\d+)*\\s*$',
        description:
          'Comma list of Telegram chat ids allowed to use the bot (subscribe, /status, /recent, send files); unset: any chat',
      }),
    ),
    HOOKS_FILE: optionalString('JSON file of outbound calls'),
    OUTBOUND_ALLOW_HOSTS: optionalString('Comma list of hosts exempt from the private-address block'),
    SENTRY_DSN: Type.Optional(
      Type.String({
        pattern: '^https?://[^@/]+@[^/]+/.+$',
        description:
          'Sentry (or Sentry-compatible) DSN, https://<key>@<host>/<project>: unhandled errors, parked messages and failed jobs are reported there, scrubbed of secrets and mail content',
      }),
    ),
    CONVERTER: Type.Union(
      ['auto', 'local', 'gotenberg', 'off'].map((c) => Type.Literal(c)),
      {
        default: 'auto',
        description:
          'Document conversion to PDF: local (LibreOffice soffice on the PATH), gotenberg (GOTENBERG_URL), off; auto is local when soffice is found, else off',
      },
    ),
    GOTENBERG_URL: Type.Optional(
      Type.String({
        pattern: '^https?://',
        description: 'Base URL of a Gotenberg 8 service, with CONVERTER=gotenberg',
      }),
    ),
    CONVERT_TIMEOUT_SECONDS: Type.Integer({
      default: 120,
      minimum: 1,
      maximum: 3600,
      description: 'One conversion is killed (or its request abandoned) after this many seconds',
    }),
    CONVERT_CONCURRENCY: Type.Integer({
      default: 1,
      minimum: 1,
      maximum: 16,
      description:
        'Conversions one convert process runs at once with CONVERTER=local (each soffice takes 150-300 MB); Gotenberg always gets one at a time',
    }),
    SCHEDULES_FILE: optionalString('JSON file of scheduled jobs (poll, digest, backup)'),
    BACKUP_DIR: Type.String({
      default: './data/backups',
      minLength: 1,
      description: 'Where backups are written (npm run backup and the backup job)',
    }),
    BACKUP_KEEP: Type.Integer({
      default: 14,
      minimum: 1,
      maximum: 1000,
      description:
        'Backups the backup job keeps in BACKUP_DIR and in DRIVE_BACKUP_FOLDER_ID; older ones are deleted after each new one',
    }),
    DRIVE_BACKUP_FOLDER_ID: optionalString(
      'With Drive configured, the backup job keeps the newest BACKUP_KEEP backups in this Drive folder too',
    ),
    LOG_LEVEL: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info', description: 'pino log level' },
    ),
  },
  { additionalProperties: true },
);

type RawConfig = Static<typeof ConfigSchema>;

/** The validated, frozen configuration of one process. */
export interface Config extends Omit<
  RawConfig,
  'ROLES' | 'API_TOKENS' | 'OUTBOUND_ALLOW_HOSTS' | 'LOG_LEVEL' | 'CONVERTER'
> {
  /** Roles to run, `all` expanded. */
  readonly roles: readonly Role[];
  /** Bearer tokens accepted on /api/*. */
  readonly apiTokens: readonly string[];
  /** Hosts exempt from the private-address block of outbound calls. */
  readonly outboundAllowHosts: readonly string[];
  /** Telegram chats allowed to use the bot; null: every chat. */
  readonly telegramAllowedChats: readonly string[] | null;
  /** pino level. */
  readonly LOG_LEVEL: string;
  /** Which Drive backend is in use, from the credentials given. */
  readonly driveMode: 'service-account' | 'oauth' | 'access-token' | 'local';
  /** `CONVERTER` as given (`auto`, `local`, `gotenberg`, `off`). */
  readonly CONVERTER: string;
  /** The converter in use: `CONVERTER` with `auto` resolved (`local` when soffice is on the PATH). */
  readonly converter: 'local' | 'gotenberg' | 'off';
}

/**
 * Variables whose values are secrets: never shown in error messages, redacted from logs, given no
 * default in deployment files and kept in the Kubernetes Secret.
 */
export const SECRET_VARIABLES: readonly string[] = [
  'API_TOKENS',
  'JWT_SECRET',
  'IMAP_PASSWORD',
  'IMAP_ACCESS_TOKEN',
  'DRIVE_CLIENT_SECRET',
  'DRIVE_REFRESH_TOKEN',
  'DRIVE_ACCESS_TOKEN',
  'TELEGRAM_BOT_TOKEN',
  'TELEGRAM_WEBHOOK_SECRET',
];
const SECRET_NAMES = new Set(SECRET_VARIABLES);

const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: false });
const validate = ajv.compile(ConfigSchema);

const splitList = (v: string | undefined): string[] =>
  (v ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

/**
 * Reads and validates the configuration. Empty strings count as unset. Throws one `ConfigError`
 * naming every bad variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(ConfigSchema.properties)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') input[key] = value.trim();
  }
  const problems: string[] = [];
  if (!validate(input)) {
    for (const e of validate.errors ?? []) {
      const name = e.instancePath.replace(/^\//, '') || String(e.params['missingProperty'] ?? '');
      let why = e.message ?? 'is invalid';
      if (e.keyword === 'pattern')
        why = `has an unexpected form (expected: ${ConfigSchema.properties[name as keyof RawConfig]?.description ?? ''})`;
      if (e.keyword === 'anyOf' || e.keyword === 'const') continue;
      // URLs are shown with their password masked; secrets not at all.
      const value = String(input[name] ?? '').replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
      const shown = SECRET_NAMES.has(name) ? '<hidden>' : JSON.stringify(value);
      problems.push(`${name}: ${why} (got ${shown})`);
    }
    const logLevelBad = validate.errors?.some((e) => e.instancePath === '/LOG_LEVEL');
    if (logLevelBad)
      problems.push(`LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent`);
    if (validate.errors?.some((e) => e.instancePath === '/CONVERTER'))
      problems.push(
        `CONVERTER: must be one of auto, local, gotenberg, off (got ${JSON.stringify(input['CONVERTER'])})`,
      );
  }
  const raw = input as RawConfig;

  const roleList = splitList(raw.ROLES);
  let roles: Role[] = [];
  if (roleList.length === 0 || roleList.includes('all')) roles = [...ALL_ROLES];
  else {
    for (const r of roleList) {
      if ((ALL_ROLES as readonly string[]).includes(r)) roles.push(r as Role);
      else problems.push(`ROLES: unknown role "${r}" (known: all, ${ALL_ROLES.join(', ')})`);
    }
  }

  if (raw.TELEGRAM_BOT_TOKEN && !raw.TELEGRAM_WEBHOOK_SECRET)
    problems.push('TELEGRAM_WEBHOOK_SECRET: is required when TELEGRAM_BOT_TOKEN is set');
  if (raw.IMAP_HOST && !raw.IMAP_USER) problems.push('IMAP_USER: is required when IMAP_HOST is set');
  if (raw.IMAP_HOST && !raw.IMAP_PASSWORD && !raw.IMAP_ACCESS_TOKEN)
    problems.push('IMAP_PASSWORD: IMAP_PASSWORD or IMAP_ACCESS_TOKEN is required when IMAP_HOST is set');
  const oauth = [raw.DRIVE_CLIENT_ID, raw.DRIVE_CLIENT_SECRET, raw.DRIVE_REFRESH_TOKEN];
  if (oauth.some(Boolean) && !oauth.every(Boolean))
    problems.push(
      'DRIVE_CLIENT_ID: DRIVE_CLIENT_ID, DRIVE_CLIENT_SECRET and DRIVE_REFRESH_TOKEN go together',
    );
  if (raw.GOOGLE_APPLICATION_CREDENTIALS && !existsSync(raw.GOOGLE_APPLICATION_CREDENTIALS))
    problems.push(`GOOGLE_APPLICATION_CREDENTIALS: file not found (${raw.GOOGLE_APPLICATION_CREDENTIALS})`);
  if (raw.HOOKS_FILE && !existsSync(raw.HOOKS_FILE))
    problems.push(`HOOKS_FILE: file not found (${raw.HOOKS_FILE})`);
  if (raw.SCHEDULES_FILE && !existsSync(raw.SCHEDULES_FILE))
    problems.push(`SCHEDULES_FILE: file not found (${raw.SCHEDULES_FILE})`);
  if (raw.IMAP_AFTER === 'move:') problems.push('IMAP_AFTER: move: needs a folder name');
  if (raw.MYSQL_TLS_CA && !existsSync(raw.MYSQL_TLS_CA))
    problems.push(`MYSQL_TLS_CA: file not found (${raw.MYSQL_TLS_CA})`);
  else if (raw.MYSQL_TLS_CA && raw.MYSQL_TLS !== 'verify')
    problems.push('MYSQL_TLS_CA: is only used with MYSQL_TLS=verify (set it, or drop MYSQL_TLS_CA)');
  if (raw.AMQP_TLS_CA && !existsSync(raw.AMQP_TLS_CA))
    problems.push(`AMQP_TLS_CA: file not found (${raw.AMQP_TLS_CA})`);
  else if (raw.AMQP_TLS_CA && raw.AMQP_URL && !raw.AMQP_URL.startsWith('amqps://'))
    problems.push('AMQP_TLS_CA: needs an amqps:// AMQP_URL (TLS is off for amqp://)');
  const soffice = () => findOnPath('soffice', env['PATH']);
  if (raw.CONVERTER === 'gotenberg' && !raw.GOTENBERG_URL)
    problems.push('GOTENBERG_URL: is required when CONVERTER=gotenberg');
  if (raw.CONVERTER === 'local' && !soffice())
    problems.push('CONVERTER: local needs LibreOffice (soffice) on the PATH; none found');

  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);

  const driveMode: Config['driveMode'] = raw.GOOGLE_APPLICATION_CREDENTIALS
    ? 'service-account'
    : raw.DRIVE_REFRESH_TOKEN
      ? 'oauth'
      : raw.DRIVE_ACCESS_TOKEN
        ? 'access-token'
        : 'local';

  const converter: Config['converter'] =
    raw.CONVERTER === 'auto' ? (soffice() ? 'local' : 'off') : (raw.CONVERTER as Config['converter']);

  const { ROLES: _r, API_TOKENS, OUTBOUND_ALLOW_HOSTS, TELEGRAM_ALLOWED_CHATS, ...rest } = raw;
  return Object.freeze({
    ...rest,
    roles: Object.freeze(roles),
    apiTokens: Object.freeze(splitList(API_TOKENS)),
    outboundAllowHosts: Object.freeze(splitList(OUTBOUND_ALLOW_HOSTS).map((h) => h.toLowerCase())),
    telegramAllowedChats: TELEGRAM_ALLOWED_CHATS ? Object.freeze(splitList(TELEGRAM_ALLOWED_CHATS)) : null,
    driveMode,
    converter,
  });
}

/** The full path of `command` in the directories of `path` (a `PATH` value), or null. */
export function findOnPath(command: string, path: string | undefined): string | null {
  for (const dir of (path ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** Loads `.env` from the working directory into `process.env` (variables already set win). */
export function loadDotEnv(path = '.env'): void {
  if (existsSync(path)) process.loadEnvFile(path);
}
