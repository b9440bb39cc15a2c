import { pino, type Logger } from 'pino';
import { SECRET_VARIABLES } from './config.js';

export type { Logger } from 'pino';

/**
 * Paths pino blanks out in every log line: tokens, passwords and authorization headers, wherever they
 * sit in the logged object.
 */
const redactPaths = [
  'password',
  '*.password',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'secret',
  '*.secret',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["x-telegram-bot-api-secret-token"]',
  '*.headers["x-api-key"]',
  ...SECRET_VARIABLES.map((name) => `config.${name}`),
];

/** Removes credentials from a URL before it is logged (`amqp://user:***@host`). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable url>';
  }
}

/** Creates the one root logger of a process; modules take `logger.child({ module })`. */
export function createLogger(level: string = 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'postroom' },
      redact: { paths: redactPaths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
