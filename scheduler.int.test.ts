import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { watchAbandonedRuns } from './consumers/jobs/abandoned-runs.js';
import { jobFailuresTotal } from './consumers/jobs/job-metrics.js';
import { createJobsHandler, type JobRunner } from './consumers/jobs/jobs.handler.js';
import { startConsumer, type RunningConsumer } from './infra/broker/consume.js';
import type { Broker } from './infra/broker/connection.js';
import { startOutboxRelay, type OutboxRelay } from './infra/broker/outbox-relay.js';
import type { Topology } from './infra/broker/topology.js';
import { parseSchedules, type JobDefinition } from './infra/schedules/schedules-file.js';
import {
  deleteTestTopology,
  startTestBroker,
  testLogger,
  testNamespace,
  testTopology,
  waitFor,
} from './test/broker.js';
import { createTestDatabase, type TestDatabase } from './test/db.js';
import { startScheduler, type Scheduler } from './producers/scheduler/scheduler.js';

/** A clock the test moves by hand, shared by every scheduler of a test. */
function manualClock(start: string) {
  let t = new Date(start).getTime();
  return {
    now: () => new Date(t),
    set: (iso: string) => void (t = new Date(iso).getTime()),
    advance: (ms: number) => void (t += ms),
  };
}

describe('the scheduler: each due time once, whatever number of schedulers run', () => {
  let t: TestDatabase;
  let broker: Broker;
  let relay: OutboxRelay;
  let topology: Topology;
  const log = testLogger();
  const ran: { job: string; dueAt: string | null; trigger: string }[] = [];
  let consumer: RunningConsumer;
  let failNext = false;
  let jobs: readonly JobDefinition[];

  beforeAll(async () => {
    t = await createTestDatabase('scheduler');
    topology = testTopology(testNamespace('sched'), { jobs: ['schedule.fired'] });
    broker = await startTestBroker(topology);
    relay = startOutboxRelay({ broker, db: t.db, log, pollMs: 100 });
    jobs = parseSchedules(
      [
        { name: 'tick', kind: 'backup', schedule: '* * * * * *' },
        { name: 'skipper', kind: 'backup', schedule: '* * * * *' },
        { name: 'once', kind: 'backup', schedule: '* * * * *', misfire: 'once' },
        { name: 'every', kind: 'backup', schedule: '* * * * *', misfire: 'all' },
        { name: 'flaky', kind: 'digest', schedule: '* * * * *' },
        { name: 'orphan', kind: 'backup', schedule: '* * * * *' },
      ],
      { allowSeconds: true },
    );
    const record: JobRunner = async ({ def, dueAt, runId }) => {
      const run = await t.db
        .selectFrom('job_runs')
        .select('trigger')
        .where('id', '=', runId)
        .executeTakeFirstOrThrow();
      ran.push({ job: def.name, dueAt: dueAt?.toISOString() ?? null, trigger: run.trigger });
      return { detail: 'done' };
    };
    const flaky: JobRunner = async (input) => {
      if (failNext) {
        failNext = false;
        throw new Error('JOB.TEST: the job fell over half way');
      }
      return record(input);
    };
    consumer = await startConsumer(
      createJobsHandler({
        jobs: new Map(jobs.map((j) => [j.name, j])),
        runners: { backup: record, digest: flaky },
      }),
      { broker, db: t.db, log },
    );
  });
  afterAll(async () => {
    await consumer?.stop();
    await relay?.stop();
    await broker?.close();
    await deleteTestTopology(topology);
    await t?.drop();
  });

  const runsOf = (job: string) => ran.filter((r) => r.job === job);

  it('three schedulers started at once run each of 120 per-second due times exactly once', async () => {
    const clock = manualClock('2026-06-01T12:00:00.400Z');
    const only = jobs.filter((j) => j.name === 'tick');
    const schedulers: Scheduler[] = await Promise.all(
      [1, 2, 3].map(() => startScheduler({ db: t.db, log, jobs: only, now: clock.now, tickMs: 0 })),
    );
    // Two minutes of a per-second schedule, every scheduler claiming at each step at once.
    for (let i = 0; i < 120; i++) {
      clock.advance(1000);
      const claimed = await Promise.all(schedulers.map((s) => s.tick()));
      expect(claimed.reduce((a, b) => a + b, 0)).toBe(1);
    }
    await Promise.all(schedulers.map((s) => s.stop()));
    await waitFor(() => runsOf('tick').length >= 120, 20_000, '120 runs');
    await new Promise((r) => setTimeout(r, 300)); // a double would arrive by now
    const due = runsOf('tick').map((r) => r.dueAt);
    expect(due).toHaveLength(120);
    expect(new Set(due).size).toBe(120);
    const expected = Array.from({ length: 120 }, (_, i) =>
      new Date(Date.parse('2026-06-01T12:00:01Z') + i * 1000).toISOString(),
    );
    expect([...due].sort()).toEqual(expected);
    const recorded = await t.db.selectFrom('job_runs').select('status').where('job', '=', 'tick').execute();
    expect(recorded).toHaveLength(120);
    expect(recorded.every((r) => r.status === 'succeeded')).toBe(true);
  });

  it('runs the due times missed while no scheduler ran as each job misfire policy says', async () => {
    const clock = manualClock('2026-06-01T10:00:05Z');
    const policyJobs = jobs.filter((j) => ['skipper', 'once', 'every'].includes(j.name));
    let s = await startScheduler({
      db: t.db,
      log,
      jobs: policyJobs,
      now: clock.now,
      tickMs: 0,
      graceMs: 10_000,
    });
    clock.set('2026-06-01T10:01:01Z');
    expect(await s.tick()).toBe(3); // 10:01 for each job, on time
    await s.stop();

    // No scheduler runs over 10:02, 10:03 and 10:04; one starts again at 10:04:30.
    clock.set('2026-06-01T10:04:30Z');
    s = await startScheduler({ db: t.db, log, jobs: policyJobs, now: clock.now, tickMs: 0, graceMs: 10_000 });
    await s.tick();
    await waitFor(
      () => ran.filter((r) => policyJobs.some((j) => j.name === r.job)).length >= 7,
      10_000,
      '7 runs',
    );
    await new Promise((r) => setTimeout(r, 300));
    const times = (job: string) => runsOf(job).map((r) => `${r.dueAt?.slice(11, 16)} ${r.trigger}`);
    expect(times('skipper')).toEqual(['10:01 schedule']);
    expect(times('once')).toEqual(['10:01 schedule', '10:04 catch-up']);
    expect(times('every').sort()).toEqual([
      '10:01 schedule',
      '10:02 catch-up',
      '10:03 catch-up',
      '10:04 catch-up',
    ]);

    // All three are back on their schedule: 10:05 runs once each.
    clock.set('2026-06-01T10:05:00.200Z');
    expect(await s.tick()).toBe(3);
    await s.stop();
    const next = await t.db
      .selectFrom('schedules')
      .select(['name', 'next_due_at'])
      .where('name', 'in', ['skipper', 'once', 'every'])
      .execute();
    expect(next.map((r) => r.next_due_at?.toISOString())).toEqual(Array(3).fill('2026-06-01T10:06:00.000Z'));
  });

  it('a job that crashes mid-run is shown failed and runs again at its next due time', async () => {
    const clock = manualClock('2026-06-02T08:00:30Z');
    const flakyJob = jobs.filter((j) => j.name === 'flaky');
    const s = await startScheduler({ db: t.db, log, jobs: flakyJob, now: clock.now, tickMs: 0 });
    failNext = true;
    clock.set('2026-06-02T08:01:00.100Z');
    await s.tick();
    const failed = await waitFor(
      () =>
        t.db
          .selectFrom('job_runs')
          .selectAll()
          .where('job', '=', 'flaky')
          .where('status', '=', 'failed')
          .executeTakeFirst(),
      10_000,
      'failed run',
    );
    expect(failed.detail).toContain('the job fell over half way');
    expect(failed.due_at?.toISOString()).toBe('2026-06-02T08:01:00.000Z');

    clock.set('2026-06-02T08:02:00.100Z');
    await s.tick();
    await waitFor(() => runsOf('flaky').length === 1, 10_000, 'next run');
    expect(runsOf('flaky')[0]?.dueAt).toBe('2026-06-02T08:02:00.000Z');

    // A process killed while running leaves the run `running`; when its event comes again, the run
    // is recorded as failed (interrupted), not run a second time.
    clock.set('2026-06-02T08:03:00.100Z');
    const before = ran.length;
    await t.db.transaction().execute(async (trx) => {
      // What the killed process left: the run claimed and started, its event still unacknowledged.
      await trx
        .updateTable('schedules')
        .set({ next_due_at: new Date('2026-06-02T08:04:00Z') })
        .where('name', '=', 'flaky')
        .execute();
    });
    const { recordRun } = await import('./infra/db/repositories/jobs.repository.js');
    const runId = await t.db.transaction().execute(async (trx) => {
      const id = await recordRun(
        trx,
        { job: 'flaky', kind: 'digest', dueAt: new Date('2026-06-02T08:03:00Z'), trigger: 'schedule' },
        clock.now(),
      );
      await trx
        .updateTable('job_runs')
        .set({ status: 'running', started_at: clock.now(), heartbeat_at: clock.now() })
        .where('id', '=', id!)
        .execute();
      return id!;
    });
    const interrupted = await waitFor(
      async () => {
        const r = await t.db.selectFrom('job_runs').selectAll().where('id', '=', runId).executeTakeFirst();
        return r?.status === 'failed' ? r : null;
      },
      10_000,
      'interrupted run failed',
    );
    expect(interrupted.detail).toContain('JOB.INTERRUPTED');
    expect(ran.length).toBe(before);
    await s.stop();
  });

  it('a run left running by a dead process whose event never comes back is failed after a minute without heartbeat', async () => {
    const clock = manualClock('2026-06-03T09:00:05Z');
    const orphanJob = jobs.filter((j) => j.name === 'orphan');
    const s = await startScheduler({ db: t.db, log, jobs: orphanJob, now: clock.now, tickMs: 0 });
    const watch = watchAbandonedRuns({ db: t.db, log, now: clock.now, everyMs: 0 });
    // What a process killed mid-run leaves when its event is gone (parked, or the queue purged): a
    // `running` row whose heartbeat stopped at 09:00:10, and nothing in RabbitMQ to redeliver.
    const runId = '0192f6a0-0000-7000-8000-0000000000f1';
    await t.db
      .insertInto('job_runs')
      .values({
        id: runId,
        job: 'orphan',
        kind: 'backup',
        due_at: new Date('2026-06-03T09:00:00Z'),
        trigger: 'schedule',
        status: 'running',
        detail: null,
        queued_at: new Date('2026-06-03T09:00:00.100Z'),
        started_at: new Date('2026-06-03T09:00:00.200Z'),
        finished_at: null,
        heartbeat_at: new Date('2026-06-03T09:00:10Z'),
      })
      .execute();
    const statusOf = async () =>
      await t.db.selectFrom('job_runs').selectAll().where('id', '=', runId).executeTakeFirstOrThrow();

    clock.set('2026-06-03T09:00:40Z'); // 30 s without a heartbeat: it may still be working
    expect(await watch.sweep()).toBe(0);
    expect((await statusOf()).status).toBe('running');

    clock.set('2026-06-03T09:01:11Z'); // 61 s: its process is gone
    expect(await watch.sweep()).toBe(1);
    expect(await s.tick()).toBe(1); // and 09:01 is due: the run in the way does not hold it up
    const failed = await statusOf();
    expect(failed.status).toBe('failed');
    expect(failed.detail).toMatch(/^JOB\.INTERRUPTED: .*\(no sign of life since 2026-06-03T09:00:10\.000Z/);
    expect(failed.finished_at?.toISOString()).toBe('2026-06-03T09:01:11.000Z');
    // A failure like any other: the "Job failing" alert counts it.
    const failures = (await jobFailuresTotal.get()).values.find((v) => v.labels.job === 'orphan');
    expect(failures?.value).toBe(1);
    await waitFor(() => runsOf('orphan').length === 1, 10_000, 'next due time');
    expect(runsOf('orphan')[0]?.dueAt).toBe('2026-06-03T09:01:00.000Z');
    expect(await watch.sweep()).toBe(0); // failed once, by one watcher
    await watch.stop();
    await s.stop();
  });
});
