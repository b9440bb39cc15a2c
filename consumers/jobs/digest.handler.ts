import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../infra/db/database.js';
import { unsubscribeBlockedChat } from '../../infra/db/repositories/telegram.repository.js';
import { describeError, PermanentError, PostroomError } from '../../infra/errors.js';
import { cronOf } from '../../infra/schedules/schedules-file.js';
import { escapeHtml } from '../../infra/telegram/html.js';
import type { TelegramClient } from '../../infra/telegram/telegram-client.js';
import type { JobRunner } from './jobs.handler.js';

/** What a digest tells about one period. */
export interface DigestSummary {
  emails: number;
  /** Attachments by verdict (`accepted`, `quarantined`, `rejected`, `pending`). */
  verdicts: Record<string, number>;
  /** Senders with their number of emails, most first (at most 10). */
  senders: { from: string; emails: number }[];
  /** Messages parked as dead letters in the period, with the first few reasons. */
  parked: number;
  parkedReasons: string[];
}

/** Summarizes the mail received in [since, until). */
export async function summarize(db: Db, since: Date, until: Date): Promise<DigestSummary> {
  const inPeriod = db.selectFrom('emails').where('received_at', '>=', since).where('received_at', '<', until);
  const emails = Number((await inPeriod.select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);
  const verdictRows = await db
    .selectFrom('attachments')
    .innerJoin('emails', 'emails.id', 'attachments.email_id')
    .where('emails.received_at', '>=', since)
    .where('emails.received_at', '<', until)
    .select(['attachments.verdict as verdict', (e) => e.fn.countAll().as('n')])
    .groupBy('attachments.verdict')
    .execute();
  const senderRows = await inPeriod
    .select(['from_address', (e) => e.fn.countAll().as('n')])
    .groupBy('from_address')
    .orderBy(sql`count(*)`, 'desc')
    .orderBy('from_address')
    .limit(10)
    .execute();
  const parkedQuery = db
    .selectFrom('dead_letters')
    .where('parked_at', '>=', since)
    .where('parked_at', '<', until);
  const parked = Number(
    (await parkedQuery.select((e) => e.fn.countAll().as('n')).executeTakeFirstOrThrow()).n,
  );
  const reasons = await parkedQuery.select('reason').orderBy('parked_at', 'desc').limit(3).execute();
  return {
    emails,
    verdicts: Object.fromEntries(verdictRows.map((r) => [r.verdict, Number(r.n)])),
    senders: senderRows.map((r) => ({ from: r.from_address, emails: Number(r.n) })),
    parked,
    parkedReasons: reasons.map((r) => r.reason.slice(0, 200)),
  };
}

/** The digest as Telegram HTML (every piece of mail data escaped). */
export function digestText(job: string, since: Date, until: Date, s: DigestSummary): string {
  const period = `${since.toISOString().slice(0, 16).replace('T', ' ')} – ${until.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const lines = [`<b>${escapeHtml(job)}</b>: ${s.emails} email${s.emails === 1 ? '' : 's'} (${period})`];
  const v = Object.entries(s.verdicts).sort(([a], [b]) => a.localeCompare(b));
  if (v.length) lines.push(`Attachments: ${v.map(([k, n]) => `${n} ${escapeHtml(k)}`).join(', ')}`);
  if (s.senders.length)
    lines.push(
      `From: ${s.senders.map((x) => `${escapeHtml(x.from)}${x.emails > 1 ? ` (${x.emails})` : ''}`).join(', ')}`,
    );
  if (s.parked > 0) {
    lines.push(`⚠️ Parked: ${s.parked} message${s.parked === 1 ? '' : 's'}`);
    for (const r of s.parkedReasons) lines.push(`• ${escapeHtml(r)}`);
  } else lines.push('Nothing parked.');
  return lines.join('\n');
}

/**
 * `digest`: each subscribed Telegram chat gets one summary of the mail since its last digest (its
 * first covers the schedule's previous period): counts by verdict, the senders, anything parked.
 * Once per chat per run: a `digests` row per run and chat is written before sending and marked sent
 * after, so a run tried again sends only to the chats not yet told.
 */
export function createDigestRunner(telegram: TelegramClient | null): JobRunner {
  return async ({ def, runId, dueAt, startedAt, db, log }) => {
    if (!telegram)
      throw new PermanentError('JOB.NO_TELEGRAM', 'TELEGRAM_BOT_TOKEN is not set: no digest can be sent');
    const until = dueAt ?? startedAt;
    const chats = (
      await db
        .selectFrom('telegram_chats')
        .select('chat_id')
        .where('subscribed', '=', 1)
        .orderBy('chat_id')
        .execute()
    ).map((r) => r.chat_id);
    let sent = 0;
    const failures: string[] = [];
    for (const chatId of chats) {
      const existing = await db
        .selectFrom('digests')
        .selectAll()
        .where('run_id', '=', runId)
        .where('chat_id', '=', chatId)
        .executeTakeFirst();
      if (existing?.status === 'sent') continue;
      const last = await db
        .selectFrom('digests')
        .select('until')
        .where('job', '=', def.name)
        .where('chat_id', '=', chatId)
        .where('status', '=', 'sent')
        .orderBy('until', 'desc')
        .limit(1)
        .executeTakeFirst();
      // A chat never told yet starts where its first failed digest started, else one period back.
      const firstFailed = last
        ? undefined
        : await db
            .selectFrom('digests')
            .select('since')
            .where('job', '=', def.name)
            .where('chat_id', '=', chatId)
            .where('status', '=', 'failed')
            .orderBy('until')
            .limit(1)
            .executeTakeFirst();
      const since =
        existing?.since ??
        last?.until ??
        firstFailed?.since ??
        cronOf(def).previousRuns(1, until)[0] ??
        new Date(until.getTime() - 24 * 3600_000);
      const id = existing?.id ?? randomUUID();
      if (!existing)
        await db
          .insertInto('digests')
          .values({
            id,
            job: def.name,
            chat_id: chatId,
            run_id: runId,
            since,
            until,
            status: 'pending',
            telegram_message_id: null,
            last_error: null,
            created_at: new Date(),
            updated_at: new Date(),
          })
          .execute();
      try {
        const summary = await summarize(db, since, until);
        const message = await telegram.sendMessage(chatId, digestText(def.name, since, until, summary));
        await db
          .updateTable('digests')
          .set({ status: 'sent', telegram_message_id: message.message_id, updated_at: new Date() })
          .where('id', '=', id)
          .execute();
        sent++;
      } catch (err) {
        const why = describeError(err);
        if (err instanceof PostroomError && err.code === 'TELEGRAM.FORBIDDEN')
          await unsubscribeBlockedChat(db, chatId);
        await db
          .updateTable('digests')
          .set({ status: 'failed', last_error: why.slice(0, 1000), updated_at: new Date() })
          .where('id', '=', id)
          .execute();
        failures.push(`${chatId}: ${why}`);
        log.warn({ err, chatId }, 'digest not sent to a chat');
      }
    }
    const detail = `sent to ${sent} of ${chats.length} subscribed chat${chats.length === 1 ? '' : 's'}`;
    if (failures.length > 0)
      return { detail: `${detail}; failed: ${failures.join('; ').slice(0, 1500)}`, outcome: 'failed' };
    return { detail };
  };
}
