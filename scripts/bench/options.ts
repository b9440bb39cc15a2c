import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';

/**
 * What `npm run bench` measures and how much of it. Each option is a `BENCH_*` variable or a flag
 * (`--emails 200`, `--emails=200`, `--quick`); a flag wins over the variable. These are the
 * benchmark's own knobs, not Postroom's configuration: the services it talks to still come from
 * `loadConfig()` (`AMQP_URL`, `MYSQL_URL`).
 */
const BenchOptionsSchema = Type.Object(
  {
    BENCH_EMAILS: Type.Integer({
      default: 2000,
      minimum: 1,
      maximum: 100_000,
      description: 'Mails appended at full speed per storage mode (each with one 10 KiB attachment)',
    }),
    BENCH_BACKLOG_EMAILS: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 100_000,
        description:
          'Mails waiting in the mailbox before the pipeline looks (a backlog, as after an outage or on a first start), per storage mode (default: BENCH_EMAILS; 0 skips it)',
      }),
    ),
    BENCH_PACED_EMAILS: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 100_000,
        description: 'Mails appended at BENCH_RATE per storage mode (default: min(500, BENCH_EMAILS))',
      }),
    ),
    BENCH_RATE: Type.Number({
      default: 50,
      exclusiveMinimum: 0,
      maximum: 10_000,
      description: 'Mails per second of the paced run',
    }),
    BENCH_ATTACHMENT_BYTES: Type.Integer({
      default: 10_240,
      minimum: 16,
      maximum: 10_485_760,
      description: 'Attachment size of each benchmark mail (bytes)',
    }),
    BENCH_BIG_BYTES: Type.Integer({
      default: 26_214_400,
      minimum: 0,
      maximum: 1_073_741_824,
      description:
        'Attachment of the memory run (bytes; 25 MiB = exactly the default ATTACHMENT_MAX_BYTES); 0 skips it',
    }),
    BENCH_APPEND_CONNECTIONS: Type.Integer({
      default: 4,
      minimum: 1,
      maximum: 64,
      description: 'IMAP connections appending in parallel during the full-speed run',
    }),
    BENCH_RAW_MESSAGES: Type.Integer({
      default: 20_000,
      minimum: 100,
      description: 'Messages of the raw AMQP publish and consume ceiling (1 KiB each)',
    }),
    BENCH_RAW_WINDOW: Type.Integer({
      default: 256,
      minimum: 1,
      description: 'Unconfirmed publishes in flight during the raw publish',
    }),
    BENCH_RAW_PREFETCH: Type.Integer({
      default: 100,
      minimum: 1,
      description: 'Prefetch of the raw consume and of the runner run it is compared with',
    }),
    BENCH_MYSQL_COMMITS: Type.Integer({
      default: 5_000,
      minimum: 10,
      description: 'Single-row transactions of the raw MySQL ceiling',
    }),
    BENCH_MYSQL_CONNECTIONS: Type.Integer({
      default: 10,
      minimum: 1,
      maximum: 100,
      description: 'Pool size of the raw MySQL ceiling (Postroom pools 10)',
    }),
    BENCH_IMAP_MAILS: Type.Integer({
      default: 2000,
      minimum: 10,
      maximum: 100_000,
      description:
        'Mails of the raw IMAP ceiling: fetched from Dovecot with imapflow, then fetched and parsed with mailparser (the benchmark mail: a line of text and one BENCH_ATTACHMENT_BYTES attachment)',
    }),
    BENCH_RUNNER_MESSAGES: Type.Integer({
      default: 20_000,
      minimum: 100,
      description:
        'Events handled by the consumer runner with a no-op handler (as many as the raw consume, so that both pay the same start-up)',
    }),
    BENCH_STORAGE: Type.String({
      default: 'local,split,drive',
      pattern: '^(local|drive|split)(,(local|drive|split))*$',
      description:
        'Modes of the end-to-end run: local (STORAGE_DIR), drive (a fake Drive server), split (local, with ROLES=imap,api in one process and the consumers in a second)',
    }),
    BENCH_SECTIONS: Type.String({
      default: 'ceiling,runner,e2e',
      pattern: '^(ceiling|runner|e2e)(,(ceiling|runner|e2e))*$',
      description: 'Sections to run',
    }),
    BENCH_TIMEOUT_SECONDS: Type.Integer({
      default: 240,
      minimum: 10,
      description: 'Longest wait for one end-to-end phase to finish; what is not done by then is reported',
    }),
    BENCH_CPU_PROF: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Directory: run the pipeline process with --cpu-prof and write its profiles there',
      }),
    ),
    BENCH_LOG_LEVEL: Type.String({
      default: 'warn',
      pattern: '^(fatal|error|warn|info|debug|trace|silent)$',
      description: 'pino level of the pipeline process; its log goes to a file, named in the report',
    }),
  },
  { additionalProperties: false },
);

/** The validated options. */
export type BenchOptions = Static<typeof BenchOptionsSchema> & {
  BENCH_PACED_EMAILS: number;
  BENCH_BACKLOG_EMAILS: number;
};

/** Flags and their variables; `--quick` stands for a smoke run. */
const FLAGS: Record<string, keyof Static<typeof BenchOptionsSchema>> = {
  emails: 'BENCH_EMAILS',
  paced: 'BENCH_PACED_EMAILS',
  backlog: 'BENCH_BACKLOG_EMAILS',
  rate: 'BENCH_RATE',
  'big-bytes': 'BENCH_BIG_BYTES',
  storage: 'BENCH_STORAGE',
  sections: 'BENCH_SECTIONS',
  'cpu-prof': 'BENCH_CPU_PROF',
  'log-level': 'BENCH_LOG_LEVEL',
  timeout: 'BENCH_TIMEOUT_SECONDS',
};

/** What `--quick` sets (a smoke run of well under a minute); explicit values still win. */
const QUICK: Record<string, string> = {
  BENCH_EMAILS: '200',
  BENCH_PACED_EMAILS: '100',
  BENCH_RAW_MESSAGES: '5000',
  BENCH_RUNNER_MESSAGES: '5000',
  BENCH_MYSQL_COMMITS: '2000',
  BENCH_IMAP_MAILS: '500',
};

const ajv = new Ajv({ allErrors: true, coerceTypes: true, useDefaults: true, strict: false });
const validate = ajv.compile(BenchOptionsSchema);

/** Reads the options from `argv` (after the script name) and `env`; throws one error naming every bad one. */
export function readBenchOptions(argv: readonly string[], env: NodeJS.ProcessEnv): BenchOptions {
  const fromArgs: Record<string, string> = {};
  const problems: string[] = [];
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--quick') {
      quick = true;
      continue;
    }
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    const key = m ? FLAGS[m[1] ?? ''] : undefined;
    if (!m || !key) {
      problems.push(
        `unknown argument ${arg} (flags: --quick, ${Object.keys(FLAGS)
          .map((f) => `--${f}`)
          .join(', ')})`,
      );
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined) problems.push(`${arg} needs a value`);
    else fromArgs[key] = value;
  }
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(BenchOptionsSchema.properties)) {
    const value = fromArgs[key] ?? env[key] ?? (quick ? QUICK[key] : undefined);
    if (value !== undefined && value.trim() !== '') input[key] = value.trim();
  }
  if (!validate(input))
    for (const e of validate.errors ?? []) {
      const name = e.instancePath.replace(/^\//, '') || 'options';
      problems.push(`${name}: ${e.message ?? 'is invalid'} (got ${JSON.stringify(input[name])})`);
    }
  if (problems.length > 0) throw new Error(`Bad benchmark options:\n  ${problems.join('\n  ')}`);
  const opts = input as Static<typeof BenchOptionsSchema>;
  return Object.freeze({
    ...opts,
    BENCH_PACED_EMAILS: opts.BENCH_PACED_EMAILS ?? Math.min(500, opts.BENCH_EMAILS),
    BENCH_BACKLOG_EMAILS: opts.BENCH_BACKLOG_EMAILS ?? opts.BENCH_EMAILS,
  });
}

/** An end-to-end mode: where files go, and whether the roles are split over two processes. */
export type BenchMode = 'local' | 'drive' | 'split';

/** The modes asked for, in order, without repeats. */
export function storageModes(opts: BenchOptions): BenchMode[] {
  return [...new Set(opts.BENCH_STORAGE.split(','))] as BenchMode[];
}

/** True when the section is asked for. */
export function runsSection(opts: BenchOptions, section: 'ceiling' | 'runner' | 'e2e'): boolean {
  return opts.BENCH_SECTIONS.split(',').includes(section);
}
