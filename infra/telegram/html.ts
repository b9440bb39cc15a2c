/**
 * Text for Telegram's HTML parse mode: the three characters its parser treats specially are escaped
 * (`&`, `<`, `>`; `"` too, for attribute values), everything else is sent as is.
 */

/** Escapes `&`, `<`, `>` and `"` for Telegram's HTML parse mode. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Cuts text to `max` characters (never inside a surrogate pair), with `…` when cut. */
export function clipText(text: string, max: number): string {
  if (text.length <= max) return text;
  const chars = Array.from(text);
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/**
 * A link for a message: an `<a>` element for http(s) URLs (Telegram refuses other schemes in links),
 * otherwise the URL as code, so a `file://` link of local filing is still shown.
 */
export function htmlLink(url: string, label: string): string {
  if (/^https?:\/\//i.test(url)) return `<a href="${escapeHtml(url)}">${escapeHtml(label)}</a>`;
  return `<code>${escapeHtml(url)}</code>`;
}

/** Bytes as a short human size (`512 B`, `1.5 MB`). */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 ? Math.round(value) : Math.round(value * 10) / 10} ${units[unit]}`;
}
