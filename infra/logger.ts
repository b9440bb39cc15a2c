import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino blanks out in every log line: tokens, passwords and authorization headers, wherever they
 * sit in the logged object.
 */
export const redactPaths = [
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
  'config.IMAP_PASSWORD',
  'config.IMAP_ACCESS_TOKEN',
  'config.TELEGRAM_BOT_TOKEN',
  'config.TELEGRAM_WEBHOOK_SECRET',
  'config.DRIVE_CLIENT_SECRET',
  'config.DRIVE_REFRESH_TOKEN',
  'config.DRIVE_ACCESS_TOKEN',
  'config.JWT_SECRET',
  'config.API_TOKENS',
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
