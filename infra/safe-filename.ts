/**
 * File names from strangers made safe to file anywhere: Drive, a local folder on Linux, macOS or
 * Windows, a ZIP. The result keeps as much of the sender's name as it can.
 */

/** Longest name in UTF-8 bytes (the common limit of ext4, NTFS, APFS and Drive's practical one). */
export const MAX_FILENAME_BYTES = 255;
// Extensions longer than this are treated as part of the name when truncating (`report.final-version-2`).
const MAX_EXTENSION_BYTES = 32;

// C0 and C1 control characters, DEL, and invisible format characters that reorder or hide text: bidi
// marks and overrides (U+202E makes "invoice<U+202E>fdp.exe" display as "invoiceexe.pdf"), the BOM and
// zero-width spaces. ZWJ and ZWNJ stay: emoji sequences and Indic or Persian script need them.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const REMOVED = /[\u0000-\u001f\u007f-\u009f\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2069\ufeff]/g;
// Characters Windows refuses in names; path separators become part boundaries first.
const WINDOWS_INVALID = /[<>:"|?*]/g;
const SEPARATORS = /[/\\]/;
// CON, PRN, AUX, NUL, COM1-9, LPT1-9 (also with the superscript digits Windows reserves), with any extension.
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$/i;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** The longest prefix of `s` that fits in `maxBytes` of UTF-8, cut between user-perceived characters. */
function truncateUtf8(s: string, maxBytes: number): string {
  if (utf8Length(s) <= maxBytes) return s;
  let out = '';
  let used = 0;
  for (const { segment } of graphemes.segment(s)) {
    const n = utf8Length(segment);
    if (used + n > maxBytes) break;
    out += segment;
    used += n;
  }
  return out;
}

/** Removes what no file system likes at the ends of a name: dots and spaces (leading dots hide files). */
function trimEnds(s: string): string {
  return s.replace(/^[\s.]+/u, '').replace(/[\s.]+$/u, '');
}

function clean(name: string): string {
  const text = name.replace(LONE_SURROGATE, '\ufffd').normalize('NFC').replace(REMOVED, '');
  // Each path segment is kept, `.` and `..` dropped, so `../../etc/passwd` becomes `etc_passwd`.
  const segments = text
    .split(SEPARATORS)
    .map((s) => s.trim())
    .filter((s) => s !== '' && !/^\.+$/.test(s));
  let s = segments.join('_').replace(WINDOWS_INVALID, '_').replace(/\s+/gu, ' ');
  s = trimEnds(s);
  // Windows also reserves these names with an extension (`con.txt`), judged on the part before the first dot.
  const stem = s.split('.')[0]!.trimEnd();
  if (WINDOWS_RESERVED.test(stem)) s = `_${s}`;
  return limit(s);
}

/** Cuts a name to MAX_FILENAME_BYTES, keeping its extension when it has a short one. */
function limit(s: string): string {
  if (utf8Length(s) <= MAX_FILENAME_BYTES) return s;
  const dot = s.lastIndexOf('.');
  const ext = dot > 0 ? s.slice(dot) : '';
  if (ext && utf8Length(ext) <= MAX_EXTENSION_BYTES) {
    const stem = trimEnds(truncateUtf8(s.slice(0, dot), MAX_FILENAME_BYTES - utf8Length(ext)));
    if (stem) return stem + ext;
  }
  return trimEnds(truncateUtf8(s, MAX_FILENAME_BYTES));
}

/**
 * A safe file name for `name`: no path separators (`/`, `\`; `.` and `..` segments dropped, the others
 * joined with `_`), no control or invisible bidi characters, none of `<>:"|?*`, no leading dots or
 * spaces, no trailing dots or spaces, no Windows reserved device name (`CON`, `nul.txt` get a `_` in
 * front), Unicode NFC, at most 255 UTF-8 bytes (cut between characters, the extension kept).
 * When nothing usable is left, `fallback` made safe the same way; `file` when even that is empty.
 *
 * @example safeFilename('../../etc/passwd', 'attachment-1.bin') === 'etc_passwd'
 */
export function safeFilename(name: string, fallback: string): string {
  return clean(name) || clean(fallback) || 'file';
}
