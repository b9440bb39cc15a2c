import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EmailProcessedV1, OutboundCompletedV1 } from '../../contracts/index.js';
import { replayDeadLetter } from '../../infra/broker/dead-letters.js';
import { createEvent } from '../../infra/broker/events.js';
import { enqueueEvents, signalOutbox } from '../../infra/broker/outbox.js';
import type { Topology } from '../../infra/broker/topology.js';
import { loadConfig } from '../../infra/config.js';
import { listDeadLetters } from '../../infra/db/repositories/dead-letters.repository.js';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace, waitFor } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { TEST_AMQP_URL } from '../../test/env.js';
import { startHookTarget, verifySignature, type HookTarget } from '../../test/hook-target.js';
import { startOutboundApi, type OutboundApiOptions } from './index.js';

function emailProcessed(): EmailProcessedV1 {
  const emailId = randomUUID();
  return createEvent(
    'email.processed',
    {
      emailId,
      messageId: `${emailId}@test`,
      source: 'imap',
      subject: 'Invoice',
      from: 'ana@example.com',
      chatId: null,
      attachments: [],
    },
    { correlationId: emailId },
  );
}

describe('outbound calls through the consumer runner, RabbitMQ and MariaDB', () => {
  let t: TestDatabase;
  let app: Postroom | null = null;
  let topology: Topology | null = null;
  const targets: HookTarget[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'postroom-hooks-'));

  beforeAll(async () => {
    t = await createTestDatabase('outbound');
  });
  afterEach(async () => {
    await app?.stop();
    app = null;
    if (topology) await deleteTestTopology(topology);
    topology = null;
    while (targets.length) await targets.pop()?.close();
  });
  afterAll(async () => {
    await t?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function target(): Promise<HookTarget> {
    const s = await startHookTarget();
    targets.push(s);
    return s;
  }

  async function start(
    hooks: unknown[],
    retryDelaysMs: number[],
    opts: OutboundApiOptions = {},
  ): Promise<Postroom> {
    const file = join(dir, `${randomUUID()}.json`);
    writeFileSync(file, JSON.stringify(hooks));
    const config = loadConfig({
      AMQP_URL: TEST_AMQP_URL,
      MYSQL_URL: t.url,
      ROLES: 'outbound',
      HOOKS_FILE: file,
      OUTBOUND_ALLOW_HOSTS: '127.0.0.1',
      LOG_LEVEL: 'silent',
    });
    app = await startPostroom(config, {
      log: testLogger(),
      namespace: testNamespace('outbound'),
      retryDelaysMs,
      httpPort: 0,
      starters: { outbound: (ctx) => startOutboundApi(ctx, opts) },
    });
    topology = app.broker.topology;
    await app.broker.waitConnected();
    return app;
  }

  async function publish(event: EmailProcessedV1): Promise<void> {
    await t.db.transaction().execute((trx) => enqueueEvents(trx, [event]));
    signalOutbox();
  }

  const callsOf = (eventId: string) =>
    t.db.selectFrom('calls').selectAll().where('event_id', '=', eventId).orderBy('hook').execute();
  const attemptsOf = (callId: string) =>
    t.db.selectFrom('call_attempts').selectAll().where('call_id', '=', callId).orderBy('attempt').execute();
  const completions = async (eventId: string) =>
    (await t.db.selectFrom('outbox').select('body').where('routing_key', '=', 'outbound.completed').execute())
      .map((r) => JSON.parse(r.body) as OutboundCompletedV1)
      .filter((e) => e.data.sourceEventId === eventId)
      .sort((a, b) => a.data.hook.localeCompare(b.data.hook));
  const settled = (eventId: string, n: number) => async () => {
    const rows = await callsOf(eventId);
    return rows.length === n && rows.every((r) => r.status !== 'pending') ? rows : null;
  };

  it('calls each matching hook once, signed, records calls and attempts, and publishes outbound.completed', async () => {
    const crm = await target();
    const audit = await target();
    const hidden = await target();
    await start(
      [
        { name: 'crm', url: `${crm.url}/hooks/mail`, events: ['email.processed'], secret: 'shared-secret' },
        {
          name: 'audit',
          url: `${audit.url}/in`,
          events: ['email.received', 'email.processed'],
          headers: { 'X-Api-Key': 'k' },
        },
        { name: 'sneaky', url: `http://localhost:${hidden.port}/`, events: ['email.processed'] },
        { name: 'other', url: `${audit.url}/other`, events: ['attachment.uploaded'] },
      ],
      [100, 200],
    );
    const e = emailProcessed();
    await publish(e);
    const rows = await waitFor(settled(e.id, 3), 15_000, 'three final calls');
    expect(
      rows.map((r) => [r.hook, r.status, r.attempts, r.last_status_code, r.email_id, r.event_type]),
    ).toEqual([
      ['audit', 'succeeded', 1, 200, e.data.emailId, 'email.processed'],
      ['crm', 'succeeded', 1, 200, e.data.emailId, 'email.processed'],
      ['sneaky', 'failed', 1, null, e.data.emailId, 'email.processed'],
    ]);
    expect(rows[2]?.last_error).toMatch(
      /^OUTBOUND\.BLOCKED: Refused localhost: it resolves to .* \(loopback\)/,
    );
    expect(hidden.connections()).toBe(0);

    const got = crm.requests[0]!;
    expect(JSON.parse(got.body.toString('utf8'))).toEqual(e);
    expect(verifySignature(got.headers['x-postroom-signature'] as string, got.body, 'shared-secret').ok).toBe(
      true,
    );
    expect(got.headers['idempotency-key']).toBe(rows[1]?.idempotency_key);
    expect(audit.requests[0]?.headers['idempotency-key']).not.toBe(got.headers['idempotency-key']);
    expect(audit.requests[0]?.headers['x-postroom-signature']).toBeUndefined();

    const attempts = await attemptsOf(rows[1]!.id);
    expect(attempts).toHaveLength(1);
    expect(attempts[0]).toMatchObject({ attempt: 1, status_code: 200, error: null });
    expect(attempts[0]!.duration_ms).toBeGreaterThanOrEqual(0);

    const done = await waitFor(
      async () => ((await completions(e.id)).length === 3 ? completions(e.id) : null),
      5_000,
      'completions',
    );
    expect(
      done.map((c) => [
        c.data.hook,
        c.data.status,
        c.data.statusCode,
        c.data.attempts,
        c.data.emailId,
        c.causationId,
      ]),
    ).toEqual([
      ['audit', 'succeeded', 200, 1, e.data.emailId, e.id],
      ['crm', 'succeeded', 200, 1, e.data.emailId, e.id],
      ['sneaky', 'failed', null, 1, e.data.emailId, e.id],
    ]);
    const timeline = await t.db
      .selectFrom('timeline')
      .selectAll()
      .where('email_id', '=', e.data.emailId)
      .where('stage', '=', 'outbound')
      .execute();
    expect(timeline.map((r) => r.detail).sort()).toEqual([
      'audit: succeeded (HTTP 200) after 1 attempt(s)',
      'crm: succeeded (HTTP 200) after 1 attempt(s)',
      expect.stringMatching(/^sneaky: failed after 1 attempt\(s\): OUTBOUND\.BLOCKED/),
    ]);

    // The same event again (a redelivery) calls nobody.
    await t.db.deleteFrom('outbox').where('event_id', '=', e.id).execute();
    await publish(e);
    await new Promise((r) => setTimeout(r, 1_000));
    expect(crm.requests).toHaveLength(1);
    expect(audit.requests).toHaveLength(1);
  });

  it('retries 5xx and 429 with the same Idempotency-Key, honours Retry-After, and never calls a hook that succeeded again', async () => {
    const flaky = await target();
    const steady = await target();
    flaky.reply({ status: 503 }, { status: 429, headers: { 'retry-after': '1' } }, { status: 200 });
    await start(
      [
        { name: 'flaky', url: flaky.url, events: ['email.processed'], secret: 'k3y' },
        { name: 'steady', url: steady.url, events: ['email.processed'] },
      ],
      [100, 300, 1_200],
    );
    const e = emailProcessed();
    await publish(e);
    const rows = await waitFor(settled(e.id, 2), 20_000, 'both calls final');
    expect(rows.map((r) => [r.hook, r.status, r.attempts, r.last_status_code])).toEqual([
      ['flaky', 'succeeded', 3, 200],
      ['steady', 'succeeded', 1, 200],
    ]);
    expect(steady.requests).toHaveLength(1);
    expect(flaky.requests).toHaveLength(3);
    const keys = new Set(flaky.requests.map((r) => r.headers['idempotency-key']));
    expect([...keys]).toEqual([rows[0]?.idempotency_key]);
    for (const r of flaky.requests)
      expect(verifySignature(r.headers['x-postroom-signature'] as string, r.body, 'k3y').ok).toBe(true);
    // The 429 asked for one second; the retry came no sooner.
    expect(flaky.requests[2]!.at - flaky.requests[1]!.at).toBeGreaterThanOrEqual(1_000);
    const attempts = await attemptsOf(rows[0]!.id);
    expect(attempts.map((a) => [a.attempt, a.status_code])).toEqual([
      [1, 503],
      [2, 429],
      [3, 200],
    ]);
    expect(attempts[1]?.error).toContain('OUTBOUND.HTTP_429');
    expect(await listDeadLetters(t.db, { consumer: 'outbound-api' })).toEqual([]);
  });

  it('records a call failed when its retry time runs out, parks the message, and a replay tries only that call again', async () => {
    const down = await target();
    const picky = await target();
    down.reply({ status: 500, body: 'boom' });
    picky.reply({ status: 422, body: 'no such customer' });
    // maxRetryHours 0.5 of a 1-second hour: half a second of retries.
    await start(
      [
        { name: 'down', url: down.url, events: ['email.processed'], maxRetryHours: 0.5 },
        { name: 'picky', url: picky.url, events: ['email.processed'] },
      ],
      [100, 200],
      { hourMs: 1_000 },
    );
    const e = emailProcessed();
    await publish(e);
    const [dl] = await waitFor(
      async () => {
        const l = (await listDeadLetters(t.db, { consumer: 'outbound-api' })).filter(
          (d) => d.event_id === e.id,
        );
        return l.length ? l : null;
      },
      15_000,
      'parked',
    );
    expect(dl!.reason).toMatch(/^OUTBOUND\.GAVE_UP: down: OUTBOUND\.GAVE_UP: no attempts left/);
    const rows = await callsOf(e.id);
    const tries = rows[0]!.attempts;
    // Half a second of 100 and 200 ms tiers: retried until then, once more after it, then given up.
    expect(tries).toBeGreaterThanOrEqual(2);
    expect(down.requests).toHaveLength(tries);
    expect(rows.map((r) => [r.hook, r.status, r.last_status_code])).toEqual([
      ['down', 'failed', 500],
      ['picky', 'failed', 422],
    ]);
    expect(rows[1]?.attempts).toBe(1);
    expect(rows[0]?.last_error).toBe(
      'OUTBOUND.GAVE_UP: no attempts left after OUTBOUND.HTTP_500: down answered 500: boom',
    );
    expect(rows[1]?.last_error).toBe('OUTBOUND.HTTP_422: picky answered 422: no such customer');
    expect(picky.requests).toHaveLength(1);
    const failed = await completions(e.id);
    expect(failed.map((c) => [c.data.hook, c.data.status, c.data.attempts])).toEqual([
      ['down', 'failed', tries],
      ['picky', 'failed', 1],
    ]);

    down.reply({ status: 204 });
    await replayDeadLetter({ broker: app!.broker, db: t.db }, dl!.id);
    await waitFor(
      async () => (await callsOf(e.id))[0]?.status === 'succeeded',
      10_000,
      'replayed call succeeded',
    );
    const after = await callsOf(e.id);
    expect(after.map((r) => [r.hook, r.status, r.attempts, r.last_status_code])).toEqual([
      ['down', 'succeeded', tries + 1, 204],
      ['picky', 'failed', 1, 422],
    ]);
    expect(picky.requests).toHaveLength(1);
    expect(new Set(down.requests.map((r) => r.headers['idempotency-key'])).size).toBe(1);
    expect(down.requests).toHaveLength(tries + 1);
  });

  it('opens a host circuit after consecutive failures, defers first attempts without connecting, lets retries through, then half-opens and closes', async () => {
    const sick = await target();
    const healthy = await target();
    sick.reply({ status: 502 });
    const coolDownMs = 1_500;
    await start(
      [
        { name: 'sick', url: sick.url, events: ['email.processed'] },
        { name: 'healthy', url: healthy.url, events: ['email.processed'] },
      ],
      [100, 300, 1_000, 2_000, 3_000],
      { breaker: { failureThreshold: 2, coolDownMs } },
    );
    const events = [emailProcessed(), emailProcessed(), emailProcessed(), emailProcessed()];
    await publish(events[0]!);
    await publish(events[1]!);
    await waitFor(() => sick.requests.length >= 2, 10_000, 'two failures');
    const openedAt = sick.requests[1]!.at;
    await publish(events[2]!);
    await publish(events[3]!);
    // Every event reaches the healthy host at once, whatever happens to the sick one.
    await waitFor(() => healthy.requests.length === 4, 10_000, 'healthy host called for every event');
    await new Promise((r) => setTimeout(r, 500));
    const keyOf = async (e: EmailProcessedV1) => (await callsOf(e.id)).find((r) => r.hook === 'sick')!;
    const opened = [await keyOf(events[0]!), await keyOf(events[1]!)];
    const deferred = [await keyOf(events[2]!), await keyOf(events[3]!)];
    // Open: the calls that failed keep retrying on their own backoff; the new ones were deferred
    // without an attempt and without a connection.
    const keys = (reqs: typeof sick.requests) => new Set(reqs.map((r) => r.headers['idempotency-key']));
    expect([...keys(sick.requests)].sort()).toEqual(opened.map((c) => c.idempotency_key).sort());
    expect(deferred.map((c) => [c.status, c.attempts])).toEqual([
      ['pending', 0],
      ['pending', 0],
    ]);

    sick.reply({ status: 200 });
    for (const e of events) await waitFor(settled(e.id, 2), 20_000, 'all calls final');
    // The deferred calls went no sooner than the cool-down after the circuit opened, once each.
    const deferredKeys = new Set(deferred.map((c) => c.idempotency_key));
    const late = sick.requests.filter((r) => deferredKeys.has(r.headers['idempotency-key'] as string));
    expect(late).toHaveLength(2);
    expect(Math.min(...late.map((r) => r.at)) - openedAt).toBeGreaterThanOrEqual(coolDownMs - 50);
    const rows = await t.db
      .selectFrom('calls')
      .select(['status', 'attempts'])
      .where('hook', '=', 'sick')
      .where(
        'event_id',
        'in',
        deferred.map((c) => c.event_id),
      )
      .execute();
    expect(rows).toEqual([
      { status: 'succeeded', attempts: 1 },
      { status: 'succeeded', attempts: 1 },
    ]);
    expect(healthy.requests).toHaveLength(4);
    const ids = new Set(events.map((e) => e.id));
    const parked = await listDeadLetters(t.db, { consumer: 'outbound-api' });
    expect(parked.filter((d) => ids.has(d.event_id ?? ''))).toEqual([]);
  });

  it('waits out a receiver down for a simulated hour: every call arrives once afterwards, nothing parked, other hosts not held up', async () => {
    const down = await target();
    const healthy = await target();
    // One simulated hour is 2 s; the retry tiers end at that hour, as the default ones do.
    const hourMs = 2_000;
    let outageEnds = Number.POSITIVE_INFINITY;
    const answered200 = new Map<string, number>();
    down.reply((req) => {
      if (Date.now() < outageEnds) return { status: 503 };
      const key = req.headers['idempotency-key'] as string;
      answered200.set(key, (answered200.get(key) ?? 0) + 1);
      return { status: 200 };
    });
    await start(
      [
        { name: 'down', url: down.url, events: ['email.processed'] },
        { name: 'healthy', url: healthy.url, events: ['email.processed'] },
      ],
      [50, 200, 800, hourMs],
      { hourMs, breaker: { failureThreshold: 2, coolDownMs: 300, maxCoolDownMs: 1_000 } },
    );
    const early = [emailProcessed(), emailProcessed()];
    for (const e of early) await publish(e);
    await waitFor(() => down.requests.length >= 2, 10_000, 'the circuit opens');
    const outageStarted = Date.now();
    const late = Array.from({ length: 18 }, emailProcessed);
    for (const e of late) await publish(e);
    const events = [...early, ...late];
    // The other host gets every call while the receiver is still down.
    await waitFor(
      () => healthy.requests.length === events.length,
      15_000,
      'healthy host called for every event',
    );
    expect(answered200.size).toBe(0);
    // The receiver comes back after a simulated hour (at least).
    await new Promise((r) => setTimeout(r, Math.max(0, outageStarted + hourMs - Date.now())));
    outageEnds = Date.now();

    for (const e of events) await waitFor(settled(e.id, 2), 30_000, 'every call final');
    const calls = (await Promise.all(events.map((e) => callsOf(e.id)))).flat();
    const downCalls = calls.filter((c) => c.hook === 'down');
    expect(downCalls.every((c) => c.status === 'succeeded')).toBe(true);
    // Exactly once: each call was answered 200 once, and only after the outage.
    expect([...answered200.values()]).toEqual(events.map(() => 1));
    expect(new Set(answered200.keys())).toEqual(new Set(downCalls.map((c) => c.idempotency_key)));
    // Deferrals are not attempts: most calls that arrived during the outage were attempted once,
    // the one time that succeeded; only the probes (one per cool-down) failed first.
    const lateIds = new Set(late.map((e) => e.id));
    const once = downCalls.filter((c) => lateIds.has(c.event_id) && c.attempts === 1);
    expect(once.length).toBeGreaterThanOrEqual(late.length / 2);
    const ids = new Set(events.map((e) => e.id));
    const parked = await listDeadLetters(t.db, { consumer: 'outbound-api' });
    expect(parked.filter((d) => ids.has(d.event_id ?? ''))).toEqual([]);
    expect(healthy.requests).toHaveLength(events.length);
  });

  it('delivers every call to a receiver that fails every first attempt, each on its second attempt', async () => {
    const picky = await target();
    const seen = new Set<string>();
    picky.reply((req) => {
      const key = req.headers['idempotency-key'] as string;
      if (seen.has(key)) return { status: 200 };
      seen.add(key);
      return { status: 503 };
    });
    // The default breaker (5 failures open the circuit), with a short cool-down.
    await start([{ name: 'picky', url: picky.url, events: ['email.processed'] }], [50, 200, 800], {
      breaker: { coolDownMs: 300 },
    });
    const events = Array.from({ length: 40 }, emailProcessed);
    for (const e of events) await publish(e);
    // Bounded: 40 calls, a few tiers of at most 800 ms and cool-downs of up to 5 min shortened here.
    for (const e of events) await waitFor(settled(e.id, 1), 30_000, 'every call final');
    const calls = (await Promise.all(events.map((e) => callsOf(e.id)))).flat();
    expect(calls.map((c) => [c.status, c.attempts])).toEqual(events.map(() => ['succeeded', 2]));
    expect(picky.requests).toHaveLength(2 * events.length);
    const ids = new Set(events.map((e) => e.id));
    const parked = await listDeadLetters(t.db, { consumer: 'outbound-api' });
    expect(parked.filter((d) => ids.has(d.event_id ?? ''))).toEqual([]);
  });
});
