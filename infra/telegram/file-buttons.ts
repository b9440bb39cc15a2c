import { clipText } from './html.js';
import type { InlineButton } from './telegram-client.js';

/** Most file buttons under one notification (Telegram allows 100; a long list helps nobody). */
export const MAX_FILE_BUTTONS = 10;

/** `callback_data` of the button that asks for an attachment (40 bytes: within Telegram's 64). */
export function getButtonData(attachmentId: string): string {
  return `get:${attachmentId}`;
}

/** The attachment id of a button's `callback_data`, or null. */
export function parseGetButton(data: string): string | null {
  const m = /^get:([0-9a-f-]{36})$/i.exec(data);
  return m ? m[1]!.toLowerCase() : null;
}

/** One row per accepted attachment: a button that sends the file back (`/get`). */
export function fileButtons(
  attachments: readonly { attachmentId: string; filename: string; verdict: string }[],
): InlineButton[][] {
  return attachments
    .filter((a) => a.verdict === 'accepted')
    .slice(0, MAX_FILE_BUTTONS)
    .map((a) => [{ text: `📥 ${clipText(a.filename, 48)}`, callbackData: getButtonData(a.attachmentId) }]);
}
