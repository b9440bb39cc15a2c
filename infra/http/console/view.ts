import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';
import type { Response } from 'express';

/**
 * Rendering of the console's pages: eta templates in `views/`, escaped by default (`<%= %>`). The
 * only raw output (`<%~ %>`) is a layout placing the page it wraps, which eta rendered and escaped
 * itself; mail data never goes out raw.
 */

/** Directory of the templates (copied next to the compiled code by `npm run build`). */
export const VIEWS_DIR = fileURLToPath(new URL('./views', import.meta.url));
/** Directory of the stylesheet and script served under `/console/static`. */
export const STATIC_DIR = fileURLToPath(new URL('./static', import.meta.url));

/** Bidi controls (embeddings, overrides, isolates, marks): the trick behind `invoice\u202Efdp.exe`. */
const BIDI_CONTROLS = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * HTML escaping of `<%= %>` (the five characters eta escapes), and bidi controls made visible as
 * `[U+202E]`: a file name cannot pass for another by reversing its own letters on screen. (`<bdi>` and
 * `unicode-bidi: isolate` in the templates keep what is left from reordering the text around it.)
 */
export function escapeText(value: unknown): string {
  return String(value)
    .replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
    .replace(BIDI_CONTROLS, (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);
}

const eta = new Eta({
  views: VIEWS_DIR,
  cache: true,
  autoEscape: true,
  escapeFunction: escapeText,
  defaultExtension: '.eta',
});

/** "12 s", "5 min", "3 h", "2 d": a length of time in seconds, rounded down to one unit. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

/** Helpers every template gets as `it.h`. */
export function helpers(now: Date) {
  const toDate = (d: Date | string) => (d instanceof Date ? d : new Date(d));
  return {
    /** ISO-8601 UTC, for `<time datetime>`. */
    iso: (d: Date | string) => toDate(d).toISOString(),
    /** "2026-12-03 07:40:12 UTC". */
    abs: (d: Date | string) =>
      toDate(d)
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, ' UTC'),
    /** "5 min ago" (or "in 5 min" for a time ahead of the clock). */
    ago: (d: Date | string) => {
      const s = (now.getTime() - toDate(d).getTime()) / 1000;
      return s >= 0 ? `${duration(s)} ago` : `in ${duration(-s)}`;
    },
    duration,
    /** "1.2 MB". */
    bytes: (n: number) => {
      if (n < 1024) return `${n} B`;
      const units = ['KB', 'MB', 'GB', 'TB'];
      let v = n / 1024;
      let i = 0;
      while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
      }
      return `${v >= 10 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
    },
    /** A short label for a file without a thumbnail: its extension ("PDF"), else "FILE". */
    fileLabel: (name: string) => {
      const m = /\.([A-Za-z0-9]{1,5})$/.exec(name);
      return m?.[1] ? m[1].toUpperCase() : 'FILE';
    },
    /** A link Drive gave us, only when it is http(s): never a `javascript:` URL in an href. */
    safeLink: (url: string | null | undefined) => (url && /^https?:\/\//i.test(url) ? url : null),
    /** Appends query parameters to a path, leaving out empty ones. */
    withQuery: (path: string, params: Record<string, string | undefined | null>) => {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
      const s = q.toString();
      return s ? `${path}?${s}` : path;
    },
  };
}

/** What every page knows besides its own data. */
export interface PageContext {
  /** Page title (shown after "Postroom"). */
  title: string;
  /** Which navigation entry is current. */
  nav?: 'mail' | 'dead-letters' | 'jobs' | 'stats';
  /** CSRF token of the session's forms (null on the sign-in page). */
  csrf: string | null;
  /** Who is signed in (shown in the header), null when nobody. */
  who: string | null;
  /** A one-line notice at the top of the page. */
  notice?: { kind: 'ok' | 'error'; text: string } | null;
}

/** Renders `view` inside the layout. */
export function renderView(view: string, page: PageContext, data: Record<string, unknown> = {}): string {
  return eta.render(view, { ...data, page, h: helpers(new Date()) });
}

/** Renders `view` inside the layout and sends it. */
export function renderPage(
  res: Response,
  view: string,
  page: PageContext,
  data: Record<string, unknown> = {},
  status = 200,
): void {
  res
    .status(status)
    .type('html')
    .send(renderView(view, page, data));
}
