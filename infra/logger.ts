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

/** What a lazy child answers from its parent without being made. */
const ASKED_OF_PARENT = new Set(['isLevelEnabled', 'level', 'levels']);

/**
 * `parent.child(bindings)`, made on the first call at a level `parent` logs. Making a child costs a
 * serialisation of its bindings (and their redaction), which a consumer paid for every message whose
 * handler calls `ctx.log.debug(...)` at LOG_LEVEL=info: here such a call costs nothing.
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  let child: Logger | null = null;
  const levels = parent.levels.values;
  return new Proxy(parent, {
    get(target, prop) {
      // A level that is off, and what says which are on, are the parent's (a child has its level).
      if (
        typeof prop === 'string' &&
        ((prop in levels && !target.isLevelEnabled(prop)) || ASKED_OF_PARENT.has(prop))
      ) {
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      }
      child ??= target.child(bindings);
      const value = Reflect.get(child, prop, child) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(child) : value;
    },
  });
}
