import { ConfigError } from '../../infra/errors.js';

/** Placeholders `DRIVE_FOLDER_TEMPLATE` understands. */
const FOLDER_TEMPLATE_PLACEHOLDERS = ['yyyy', 'mm', 'dd', 'from', 'from_domain', 'subject'] as const;

/** One placeholder name. */
export type FolderTemplatePlaceholder = (typeof FOLDER_TEMPLATE_PLACEHOLDERS)[number];

/** What a template is filled with: facts of one email (or Telegram message). */
export interface FolderTemplateValues {
  /** When it was received; `{yyyy}`, `{mm}` and `{dd}` are taken from it in `timeZone`. */
  date: Date;
  /** Sender address (`ana@example.com`, or `Ana <ana@example.com>`); lower-cased for `{from}`. */
  from: string;
  /** Subject line as received. */
  subject: string;
}

/** Options of `renderFolderTemplate`. */
export interface RenderFolderTemplateOptions {
  /** IANA time zone for the date placeholders (default `UTC`, so every process files alike). */
  timeZone?: string;
  /** Longest folder name in characters (default 100); longer ones are cut. */
  maxSegmentLength?: number;
}

/** The name used for a segment that comes out empty (a blank subject, a sender without a domain). */
const EMPTY_SEGMENT = '_';

const PLACEHOLDER = /\{([^{}]*)\}/g;

/**
 * Checks a folder template and returns one line per problem (empty when it is fine): unknown
 * placeholders, stray braces, no folder at all. Meant for start-up validation, next to the other
 * variables, so a typo is reported before any mail is filed.
 */
export function validateFolderTemplate(template: string): string[] {
  const problems: string[] = [];
  const known = FOLDER_TEMPLATE_PLACEHOLDERS as readonly string[];
  for (const m of template.matchAll(PLACEHOLDER)) {
    const name = m[1] ?? '';
    if (!known.includes(name))
      problems.push(
        `unknown placeholder {${name}} (known: ${FOLDER_TEMPLATE_PLACEHOLDERS.map((p) => `{${p}}`).join(' ')})`,
      );
  }
  if (/[{}]/.test(template.replace(PLACEHOLDER, '')))
    problems.push('unbalanced { or } (placeholders look like {yyyy})');
  if (splitTemplate(template).length === 0)
    problems.push('names no folder (use for example {yyyy}/{mm}/{from})');
  return problems;
}

/**
 * Fills a template such as `{yyyy}/{mm}/{from}` and returns the folder names, outermost first, each
 * made safe by `safeFolderName`. Throws a `ConfigError` for an invalid template.
 */
export function renderFolderTemplate(
  template: string,
  values: FolderTemplateValues,
  options: RenderFolderTemplateOptions = {},
): string[] {
  const problems = validateFolderTemplate(template);
  if (problems.length > 0) throw new ConfigError(problems.map((p) => `DRIVE_FOLDER_TEMPLATE: ${p}`));
  const filled = placeholderValues(values, options.timeZone ?? 'UTC');
  return splitTemplate(template).map((segment) =>
    safeFolderName(
      segment.replace(PLACEHOLDER, (_, name: FolderTemplatePlaceholder) => filled[name]),
      options.maxSegmentLength,
    ),
  );
}

/**
 * Makes one folder name safe for Drive and for a local file system alike: path separators become `_`,
 * control and invisible format characters (such as right-to-left overrides) become spaces, runs of
 * white space shrink to one, leading dots become `_` (no `.`, `..` or hidden folders), the result is
 * trimmed and cut to `maxLength` characters (never inside a character), and an empty result becomes `_`.
 */
export function safeFolderName(raw: string, maxLength = 100): string {
  let s = raw
    .normalize('NFC')
    .replace(/[/\\]/g, '_')
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, ' ')
    .replace(/\s+/gu, ' ')
    .trim()
    .replace(/^\.+/, (dots) => '_'.repeat(dots.length));
  const chars = Array.from(s);
  if (chars.length > maxLength) s = chars.slice(0, maxLength).join('').trimEnd();
  return s === '' ? EMPTY_SEGMENT : s;
}

/** The template's folder segments; empty ones (leading, trailing or doubled `/`) are dropped. */
function splitTemplate(template: string): string[] {
  return template
    .split('/')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/** One formatter per time zone: building one costs far more than using it. */
function dateFormat(timeZone: string): Intl.DateTimeFormat {
  let f = dateFormats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit' });
    dateFormats.set(timeZone, f);
  }
  return f;
}

function placeholderValues(
  values: FolderTemplateValues,
  timeZone: string,
): Record<FolderTemplatePlaceholder, string> {
  const parts = dateFormat(timeZone).formatToParts(values.date);
  const part = (type: string) => parts.find((p) => p.type === type)?.value ?? EMPTY_SEGMENT;
  const from = senderAddress(values.from);
  const at = from.lastIndexOf('@');
  return {
    yyyy: part('year'),
    mm: part('month'),
    dd: part('day'),
    from,
    from_domain: at >= 0 ? from.slice(at + 1) : '',
    subject: values.subject,
  };
}

/** `Ana <Ana@Example.com>` → `ana@example.com`; a bare address is only lower-cased and trimmed. */
function senderAddress(from: string): string {
  const angle = /<([^<>]*)>\s*$/.exec(from);
  return (angle?.[1] ?? from).trim().toLowerCase();
}
