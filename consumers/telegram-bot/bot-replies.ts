import { attachmentLine, joinWithinLimit } from '../../infra/telegram/email-format.js';
import { clipText, escapeHtml, formatBytes } from '../../infra/telegram/html.js';
import type { EmailDetail, EmailSummary } from './email-lookup.js';

/** The texts the bot answers with (HTML parse mode; everything from outside is escaped). */

/** `/help`, and the answer to anything the bot does not understand. */
export function helpText(): string {
  return [
    '<b>Postroom</b> files the attachments of incoming mail and tells you about them.',
    '',
    '/start: a message for every processed email',
    '/stop: no more of those messages',
    '/status &lt;email id or Message-ID&gt;: where an email is',
    '/recent: the last 10 emails',
    '/get &lt;attachment id&gt;: the file itself, as a document (also the buttons under a notification)',
    '/help: this text',
    '',
    'Send me a document or a photo (up to 20 MB): it is checked and filed like an email attachment, and I reply with the outcome.',
  ].join('\n');
}

/** Answer to an unknown command. */
export function unknownCommandText(name: string): string {
  return `I do not know /${escapeHtml(clipText(name, 64))}.\n\n${helpText()}`;
}

/** Answer to `/start`. */
export function startText(wasSubscribed: boolean): string {
  return wasSubscribed
    ? 'You are already subscribed: you get a message for every processed email. /stop ends that.'
    : '✅ Subscribed: you will get a message for every processed email. /stop ends that, /help lists what else I do.';
}

/** Answer to `/stop`. */
export function stopText(wasSubscribed: boolean): string {
  return wasSubscribed
    ? '🔕 Unsubscribed: no more messages about emails. /start to subscribe again.'
    : 'You were not subscribed. /start subscribes you.';
}

const when = (d: Date) => `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
const statusWord = (s: string) => (s === 'done' ? '✅ done' : '⏳ processing');
const sourceWord = (s: string) => (s === 'telegram' ? 'Telegram' : s === 'drive' ? 'Drive intake' : 'email');

/** Answer to `/status` without an argument. */
export function statusUsageText(): string {
  return 'Usage: /status &lt;email id or Message-ID&gt;\nThe ids are in /recent.';
}

/** Answer to `/status` for an email nobody recorded. */
export function statusNotFoundText(ref: string): string {
  return `No email with id or Message-ID <code>${escapeHtml(clipText(ref, 300))}</code>.`;
}

/** Answer to `/status` for one email: subject, sender, state, each attachment's verdict and link. */
export function statusText(e: EmailDetail): string {
  const head = [
    `📄 <b>${escapeHtml(clipText(e.subject || '(no subject)', 300))}</b>`,
    `<b>From:</b> ${escapeHtml(clipText(e.from || '(unknown)', 200))}`,
    `<b>Received:</b> ${when(e.receivedAt)} by ${sourceWord(e.source)}`,
    `<b>Status:</b> ${statusWord(e.status)}`,
    `<b>Id:</b> <code>${e.id}</code>`,
    `<b>Message-ID:</b> <code>${escapeHtml(clipText(e.messageId, 300))}</code>`,
  ];
  const counts = Object.entries(e.notifications);
  if (counts.length > 0)
    head.push(`<b>Notifications:</b> ${counts.map(([s, n]) => `${n} ${escapeHtml(s)}`).join(', ')}`);
  head.push(e.attachments.length === 0 ? 'No attachments.' : `<b>Attachments (${e.attachments.length}):</b>`);
  return joinWithinLimit(head, e.attachments.map(attachmentLine));
}

/** Answer to `/recent`. */
export function recentText(emails: EmailSummary[]): string {
  if (emails.length === 0) return 'No emails yet.';
  const lines = emails.map(
    (e) =>
      `• ${when(e.receivedAt)} · ${escapeHtml(clipText(e.from || '(unknown)', 80))} · ` +
      `<b>${escapeHtml(clipText(e.subject || '(no subject)', 120))}</b> · ${statusWord(e.status)}, ` +
      `${e.attachmentCount} attachment${e.attachmentCount === 1 ? '' : 's'}\n  /status <code>${e.id}</code>`,
  );
  return joinWithinLimit([`🕘 <b>Last ${emails.length} email${emails.length === 1 ? '' : 's'}</b>`], lines);
}

/** Answer to a file that was taken in. */
export function fileReceivedText(name: string, size: number): string {
  return `📥 Got <b>${escapeHtml(clipText(name, 200))}</b> (${formatBytes(size)}). I am checking and filing it, and will reply with the outcome.`;
}

/** Answer to a file over the download limit. */
export function fileTooLargeText(name: string, size: number | null, maxBytes: number): string {
  const got = size === null ? ' is' : ` is ${formatBytes(size)},`;
  return (
    `⛔ <b>${escapeHtml(clipText(name, 200))}</b>${got} too large. Bots can take files up to ${formatBytes(maxBytes)}; ` +
    'please send a smaller file, or mail it instead.'
  );
}

/** Answer to a file that could not be downloaded, for good. */
export function fileFailedText(name: string): string {
  return `⚠️ I could not download <b>${escapeHtml(clipText(name, 200))}</b> from Telegram. Please send it again.`;
}

/** The answer to a chat that is not in `TELEGRAM_ALLOWED_CHATS`. */
export function notAllowedText(chatId: string): string {
  return `This bot is private. Ask its operator to add this chat (id <code>${escapeHtml(chatId)}</code>) to TELEGRAM_ALLOWED_CHATS.`;
}

/** Answer to `/get` without an argument. */
export function getUsageText(): string {
  return 'Usage: /get &lt;attachment id&gt;\nThe buttons under a notification do the same.';
}
