import { createHash } from 'node:crypto';
import { ValidationError } from '../../errors.js';

/**
 * Opaque keyset cursors: the position (timestamp and id of the last item served) and a short hash of
 * the filters it was made for, base64url-encoded. Clients pass `nextCursor` back unchanged; a cursor
 * used with other filters, or tampered with, is refused with 400.
 */

/** A position in a list ordered by (timestamp desc, id desc). */
export interface KeysetPosition {
  /** Timestamp of the last item served. */
  at: Date;
  /** Id of the last item served. */
  id: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Short hash of the filters a cursor belongs to (order of keys does not matter). */
function filterHash(filters: Record<string, unknown>): string {
  const canonical = Object.keys(filters)
    .sort()
    .filter((k) => filters[k] !== undefined)
    .map((k) => [k, filters[k]]);
  return createHash('sha256').update(JSON.stringify(canonical)).digest('base64url').slice(0, 12);
}

/** Makes the cursor that continues after `last`, for these filters. */
export function encodeCursor(last: KeysetPosition, filters: Record<string, unknown>): string {
  return Buffer.from(
    JSON.stringify({ v: 1, t: last.at.toISOString(), i: last.id, f: filterHash(filters) }),
  ).toString('base64url');
}

/** Reads a cursor made by `encodeCursor` for the same filters; throws `ValidationError` otherwise. */
export function decodeCursor(cursor: string, filters: Record<string, unknown>): KeysetPosition {
  const bad = (why: string) => new ValidationError('Invalid cursor', [`cursor: ${why}`]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad('not a cursor this API made');
  }
  const c = parsed as { v?: unknown; t?: unknown; i?: unknown; f?: unknown } | null;
  if (!c || c.v !== 1 || typeof c.t !== 'string' || typeof c.i !== 'string' || !UUID.test(c.i))
    throw bad('not a cursor this API made');
  const at = new Date(c.t);
  if (Number.isNaN(at.getTime())) throw bad('not a cursor this API made');
  if (c.f !== filterHash(filters)) throw bad('made for other filters; start again without a cursor');
  return { at, id: c.i };
}
