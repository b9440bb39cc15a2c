import { clipText, escapeHtml, formatBytes, htmlLink } from './html.js';

/** Longest message text Postroom sends: under Telegram's 4096 characters (after entity parsing). */
const MAX_MESSAGE_CHARS = 4000;

/** An attachment as the bot and the notifier show it. */
export interface AttachmentView {
  filename: string;
  /** `pending`, `accepted`, `quarantined`, `rejected`. */
  verdict: string;
  reason: string | null;
  /** `pending`, `uploaded`, `skipped`, `failed`. */
  driveStatus: string;
  link: string | null;
  /** Bytes, when known. */
  size?: number;
  /** The PDF an office document was converted to, when it was (or failed to be). */
  conversion?: { status: string; reason: string; driveStatus: string | null; link: string | null };
}

const VERDICT_ICONS: Record<string, string> = {
  accepted: '✅',
  quarantined: '☣️',
  rejected: '⛔',
  pending: '⏳',
};

/** One HTML line per attachment: name, verdict (with the reason unless accepted) and where it was filed. */
export function attachmentLine(a: AttachmentView): string {
  const icon = VERDICT_ICONS[a.verdict] ?? '•';
  const size = a.size === undefined ? '' : ` (${formatBytes(a.size)})`;
  let line = `${icon} <b>${escapeHtml(clipText(a.filename, 200))}</b>${size}: ${escapeHtml(a.verdict)}`;
  if (a.verdict !== 'accepted' && a.reason) line += ` (${escapeHtml(clipText(a.reason, 200))})`;
  if (a.driveStatus === 'uploaded' && a.link) line += ` · filed: ${htmlLink(a.link, 'open')}`;
  else if (a.driveStatus === 'skipped' && a.link) line += ` · already filed: ${htmlLink(a.link, 'open')}`;
  else if (a.driveStatus === 'failed') line += ' · ⚠️ filing failed';
  else if (a.driveStatus === 'pending' && a.verdict !== 'pending') line += ' · filing…';
  const c = a.conversion;
  if (c?.status === 'converted' && c.link) line += ` · PDF: ${htmlLink(c.link, 'open')}`;
  else if (c?.status === 'converted' && c.driveStatus === 'failed')
    line += ' · PDF made, ⚠️ filing it failed';
  else if (c?.status === 'failed') line += ` · ⚠️ no PDF (${escapeHtml(clipText(c.reason, 200))})`;
  else if (c?.status === 'pending') line += ' · converting…';
  return line;
}

/**
 * Joins a head and lines into one message of at most `max` characters; lines that do not fit are
 * replaced by `… and N more`. Lines are whole HTML fragments, so cutting between them keeps tags closed.
 */
export function joinWithinLimit(head: string[], lines: string[], max = MAX_MESSAGE_CHARS): string {
  const out = [...head];
  let length = out.join('\n').length;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const rest = lines.length - i - 1;
    const tail = rest > 0 ? `\n… and ${rest} more` : '';
    if (length + 1 + line.length + tail.length > max) {
      out.push(`… and ${lines.length - i} more`);
      return out.join('\n');
    }
    out.push(line);
    length += 1 + line.length;
  }
  return out.join('\n');
}
