import { ApiPolledV1 } from './api-polled.v1.js';
import { AttachmentAnalyzedV1 } from './attachment-analyzed.v1.js';
import { AttachmentConvertedV1 } from './attachment-converted.v1.js';
import { AttachmentStoredV1 } from './attachment-stored.v1.js';
import { AttachmentUploadedV1 } from './attachment-uploaded.v1.js';
import { EmailProcessedV1 } from './email-processed.v1.js';
import { EmailReceivedV1 } from './email-received.v1.js';
import type { EventContract } from './envelope.js';
import { NotificationSentV1 } from './notification-sent.v1.js';
import { OutboundCompletedV1 } from './outbound-completed.v1.js';
import { ScheduleFiredV1 } from './schedule-fired.v1.js';
import { TelegramUpdateV1 } from './telegram-update.v1.js';

export * from './envelope.js';
export * from './email-received.v1.js';
export * from './attachment-stored.v1.js';
export * from './attachment-analyzed.v1.js';
export * from './attachment-converted.v1.js';
export * from './attachment-uploaded.v1.js';
export * from './email-processed.v1.js';
export * from './telegram-update.v1.js';
export * from './outbound-completed.v1.js';
export * from './notification-sent.v1.js';
export * from './schedule-fired.v1.js';
export * from './api-polled.v1.js';

/** Every event Postroom publishes, by type. */
export const contracts = {
  'email.received': EmailReceivedV1,
  'attachment.stored': AttachmentStoredV1,
  'attachment.analyzed': AttachmentAnalyzedV1,
  'attachment.converted': AttachmentConvertedV1,
  'attachment.uploaded': AttachmentUploadedV1,
  'email.processed': EmailProcessedV1,
  'telegram.update': TelegramUpdateV1,
  'outbound.completed': OutboundCompletedV1,
  'notification.sent': NotificationSentV1,
  'schedule.fired': ScheduleFiredV1,
  'api.polled': ApiPolledV1,
} as const satisfies Record<string, EventContract>;

/** Every event type name. */
export type EventType = keyof typeof contracts;
/** The envelope of one event type. */
export type EventOf<T extends EventType> = (typeof contracts)[T]['example'];
/** Any Postroom event. */
export type AnyEvent = { [T in EventType]: EventOf<T> }[EventType];

/** The short names of the topic exchanges events are published to. */
export const EXCHANGES = [...new Set(Object.values(contracts).map((c) => c.exchange))];

/** True when `type` names a known event. */
export function isEventType(type: string): type is EventType {
  return Object.hasOwn(contracts, type);
}
