import type { EmailProcessedV1 } from '../../contracts/index.js';
import { attachmentLine, joinWithinLimit } from '../../infra/telegram/email-format.js';
import { clipText, escapeHtml } from '../../infra/telegram/html.js';

/**
 * The message about one processed email (HTML parse mode, everything from outside escaped): for a
 * mailed email, sender, subject and each attachment's verdict and link; for a file sent to the bot,
 * the same outcome as an answer to it.
 */
export function notificationText(data: EmailProcessedV1['data']): string {
  const lines = data.attachments.map((a) =>
    attachmentLine({
      filename: a.filename,
      verdict: a.verdict,
      reason: a.reason,
      driveStatus: a.driveStatus,
      link: a.link,
      ...(a.conversion ? { conversion: a.conversion } : {}),
    }),
  );
  const head =
    data.source === 'telegram'
      ? ['📎 <b>Your file is processed</b>']
      : [
          '📬 <b>New email processed</b>',
          `<b>From:</b> ${escapeHtml(clipText(data.from || '(unknown)', 200))}`,
          `<b>Subject:</b> ${escapeHtml(clipText(data.subject || '(no subject)', 300))}`,
        ];
  if (lines.length === 0) head.push('No attachments.');
  return joinWithinLimit(head, lines);
}

/** The Telegram message a file sent to the bot came in (from its Message-ID), to answer it. */
export function repliedMessageId(messageId: string): number | undefined {
  const m = /^telegram--?\d+-(\d+)@telegram\.postroom$/.exec(messageId);
  return m ? Number(m[1]) : undefined;
}
