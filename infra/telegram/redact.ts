/**
 * Keeps the bot token out of logs and error messages. The token is part of every Bot API URL
 * (`/bot<token>/<method>`, `/file/bot<token>/<path>`), so any error that quotes a URL, and any error
 * a library wraps around one, may carry it.
 */

const PLACEHOLDER = '<bot-token>';
/** The shape of a bot token anywhere in a text (`123456789:AA...`), for errors we did not build. */
const TOKEN_SHAPE = /\d{5,}:[A-Za-z0-9_-]{30,}/g;

/** `text` with the token (and anything shaped like a bot token) replaced by `<bot-token>`. */
export function redactToken(text: string, token: string): string {
  const exact = token ? text.split(token).join(PLACEHOLDER) : text;
  return exact.replace(TOKEN_SHAPE, PLACEHOLDER);
}

/**
 * A copy of an error (and of its `cause` chain) safe to log: name, message and stack with the token
 * removed; other fields (response bodies, request options) are dropped, since they may quote URLs.
 */
export function scrubError(err: unknown, token: string, depth = 0): Error {
  if (!(err instanceof Error)) return new Error(redactToken(String(err), token));
  const cause = err.cause !== undefined && depth < 5 ? scrubError(err.cause, token, depth + 1) : undefined;
  const copy = new Error(redactToken(err.message, token), cause === undefined ? undefined : { cause });
  copy.name = err.name;
  copy.stack = err.stack === undefined ? undefined : redactToken(err.stack, token);
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') (copy as Error & { code?: unknown }).code = code;
  return copy;
}
