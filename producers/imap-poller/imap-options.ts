import type { ImapFlowOptions } from 'imapflow';
import type { Config } from '../../infra/config.js';
import { ConfigError } from '../../infra/errors.js';
import type { Logger } from '../../infra/logger.js';

/** The configuration the poller reads (a `Config` from `loadConfig` fits). */
export type ImapPollerConfig = Pick<
  Config,
  | 'IMAP_HOST'
  | 'IMAP_PORT'
  | 'IMAP_SECURE'
  | 'IMAP_USER'
  | 'IMAP_PASSWORD'
  | 'IMAP_ACCESS_TOKEN'
  | 'IMAP_MAILBOX'
  | 'IMAP_AFTER'
  | 'IMAP_START'
  | 'IMAP_POLL_SECONDS'
  | 'ATTACHMENT_MAX_BYTES'
>;

/** What is done to a mail once its email is committed (`IMAP_AFTER`). */
export type ImapAfter = { kind: 'seen' } | { kind: 'none' } | { kind: 'move'; folder: string };

/** Reads `IMAP_AFTER` (`seen`, `none`, `move:<folder>`). */
export function parseImapAfter(value: string): ImapAfter {
  if (value === 'seen' || value === 'none') return { kind: value };
  const folder = value.startsWith('move:') ? value.slice('move:'.length).trim() : '';
  if (!folder)
    throw new ConfigError([
      `IMAP_AFTER: expected seen, none or move:<folder> (got ${JSON.stringify(value)})`,
    ]);
  return { kind: 'move', folder };
}

/** One MiB. */
const MIB = 1024 * 1024;

/**
 * The bound on a whole message, checked against the server's RFC822.SIZE before anything is
 * downloaded: twice `ATTACHMENT_MAX_BYTES` plus 1 MiB. A message carrying one attachment of the largest
 * accepted size (base64 adds a third) plus its text fits; anything larger is recorded from its headers
 * only, with a warning, and never downloaded. The parser gets the same bound as its own limit.
 */
export function messageMaxBytes(attachmentMaxBytes: number): number {
  return attachmentMaxBytes * 2 + MIB;
}

/** The checkpoint key of the account: `user@host`. */
export function imapAccount(config: ImapPollerConfig): string {
  return `${config.IMAP_USER ?? ''}@${config.IMAP_HOST ?? ''}`;
}

/**
 * imapflow options from the configuration: TLS unless `IMAP_SECURE=false` (then STARTTLS when the
 * server offers it), password or XOAUTH2 (`IMAP_ACCESS_TOKEN` wins when both are set), auto-IDLE one
 * second after the last command, imapflow's own logging at `warn` at most (its debug lines would
 * carry mail data).
 */
export function imapClientOptions(config: ImapPollerConfig, log: Logger): ImapFlowOptions {
  if (!config.IMAP_HOST || !config.IMAP_USER || (!config.IMAP_PASSWORD && !config.IMAP_ACCESS_TOKEN))
    throw new ConfigError([
      'IMAP_HOST: the IMAP poller needs IMAP_HOST, IMAP_USER and IMAP_PASSWORD or IMAP_ACCESS_TOKEN',
    ]);
  const auth = config.IMAP_ACCESS_TOKEN
    ? { user: config.IMAP_USER, accessToken: config.IMAP_ACCESS_TOKEN }
    : { user: config.IMAP_USER, pass: config.IMAP_PASSWORD };
  const quiet = ['error', 'fatal', 'silent'].includes(log.level) ? log.level : 'warn';
  return {
    host: config.IMAP_HOST,
    port: config.IMAP_PORT,
    secure: config.IMAP_SECURE,
    auth,
    logger: log.child({ module: 'imapflow' }, { level: quiet }),
    clientInfo: { name: 'postroom' },
    // IDLE again soon after the last command: new mail is announced at once (a 1 s delay made
    // each mail wait up to that long once the poller had caught up).
    autoIdleDelay: 50,
    connectionTimeout: 30_000,
    greetingTimeout: 16_000,
  };
}

/**
 * Node's codes for a server certificate that is valid but signed by no CA this process trusts: the
 * usual case of a self-hosted server with a private CA, fixed by trusting that CA.
 */
const UNTRUSTED_CERTIFICATE = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
]);

/** Node's codes for a certificate refused for what it says (dates, signature, use, name). */
const BAD_CERTIFICATE = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'PATH_LENGTH_EXCEEDED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * When `err` is the IMAP server's certificate being refused, one line saying so for an operator: the
 * server, TLS or STARTTLS, Node's reason and code, and what fixes it; null for any other failure.
 * Waiting seldom fixes these, an operator has to (a private CA is trusted only through
 * `NODE_EXTRA_CA_CERTS`, which Node reads at start), so the poller logs them as errors, in words,
 * rather than as one more failed session (it still reconnects, in case the server's certificate is fixed).
 */
export function certificateProblem(
  err: unknown,
  config: Pick<ImapPollerConfig, 'IMAP_HOST' | 'IMAP_PORT' | 'IMAP_SECURE'>,
): string | null {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string' || !(UNTRUSTED_CERTIFICATE.has(code) || BAD_CERTIFICATE.has(code)))
    return null;
  const server = `${config.IMAP_HOST ?? ''}:${config.IMAP_PORT} (${config.IMAP_SECURE ? 'TLS' : 'STARTTLS'})`;
  const reason = `${(err as Error).message} (${code})`;
  const fix = UNTRUSTED_CERTIFICATE.has(code)
    ? 'if the server uses a private or self-signed CA, start Postroom with NODE_EXTRA_CA_CERTS=/path/to/ca.pem'
    : code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH'
      ? 'set IMAP_HOST to a name the certificate is issued for'
      : "the server's certificate must be fixed";
  return `IMAP server certificate refused for ${server}: ${reason}; ${fix} (reconnecting with backoff meanwhile)`;
}
