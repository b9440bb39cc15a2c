import { Counter, Gauge, type Registry } from 'prom-client';
import { registry } from '../../infra/metrics.js';

// Reused when the module is evaluated twice in one process (test runners), since a registry refuses
// a second metric of the same name.
function gauge(reg: Registry, name: string, help: string): Gauge {
  return (reg.getSingleMetric(name) as Gauge | undefined) ?? new Gauge({ name, help, registers: [reg] });
}
function counter<L extends string>(
  reg: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  return (
    (reg.getSingleMetric(name) as Counter<L> | undefined) ??
    new Counter<L>({ name, help, labelNames, registers: [reg] })
  );
}

/** 1 while the poller holds an authenticated IMAP connection with its mailbox selected. */
export const imapConnected = gauge(
  registry,
  'postroom_imap_connected',
  '1 while the IMAP poller is connected with its mailbox selected',
);

/** Messages handled by the poller, by result: `created`, `duplicate`, `oversize` (recorded from headers), `fallback` (recorded from headers after repeated failures). */
export const imapEmailsTotal = counter(
  registry,
  'postroom_imap_emails_total',
  'IMAP messages handled, by result (created, duplicate, oversize, fallback)',
  ['result'] as const,
);

/** Unix time (seconds) of the last complete sync of the mailbox. */
export const imapLastSyncSeconds = gauge(
  registry,
  'postroom_imap_last_sync_timestamp_seconds',
  'Unix time of the last complete IMAP sync',
);

/** Connections lost or refused, after which the poller reconnected with backoff. */
export const imapReconnectsTotal = counter(
  registry,
  'postroom_imap_reconnects_total',
  'IMAP connection failures followed by a reconnect',
);

/** Watchdog probes that found new mail the server had not announced (a silent IDLE). */
export const imapWatchdogResyncsTotal = counter(
  registry,
  'postroom_imap_watchdog_resyncs_total',
  'Watchdog probes that found UIDNEXT moved without any EXISTS notification',
);

/** Messages whose processing failed (each attempt counts); a message failing 3 times is recorded from its headers. */
export const imapMessageFailuresTotal = counter(
  registry,
  'postroom_imap_message_failures_total',
  'Failed attempts to process one IMAP message',
);
