import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.js';
import { cronOf, loadSchedulesFile, parseSchedules } from './schedules-file.js';

const problemsOf = (content: unknown): string[] => {
  try {
    parseSchedules(content);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('SCHEDULES_FILE', () => {
  it('accepts the example of SPEC.md and applies defaults', () => {
    const jobs = parseSchedules([
      {
        name: 'rates',
        kind: 'poll',
        schedule: '*/15 * * * *',
        timezone: 'Europe/Berlin',
        url: 'https://api.example/rates',
        method: 'GET',
        headers: { 'X-Api-Key': '...' },
        misfire: 'skip',
      },
      { name: 'morning-digest', kind: 'digest', schedule: '0 8 * * *' },
      { name: 'nightly-backup', kind: 'backup', schedule: '30 2 * * *' },
      { name: 'retention', kind: 'retention', schedule: '0 3 * * *' },
    ]);
    expect(jobs[0]).toEqual({
      name: 'rates',
      kind: 'poll',
      schedule: '*/15 * * * *',
      timezone: 'Europe/Berlin',
      misfire: 'skip',
      poll: {
        url: 'https://api.example/rates',
        method: 'GET',
        headers: { 'X-Api-Key': '...' },
        timeoutMs: 10_000,
        retries: 2,
      },
    });
    expect(jobs[1]).toEqual({
      name: 'morning-digest',
      kind: 'digest',
      schedule: '0 8 * * *',
      timezone: 'UTC',
      misfire: 'skip',
      poll: null,
    });
    expect(Object.isFrozen(jobs[2])).toBe(true);
    expect(jobs[3]).toEqual({
      name: 'retention',
      kind: 'retention',
      schedule: '0 3 * * *',
      timezone: 'UTC',
      misfire: 'skip',
      poll: null,
    });
  });

  it('takes a retention job with no more than a schedule, and no poll fields on it', () => {
    expect(problemsOf([{ name: 'r', kind: 'retention', schedule: '0 3 * * *', misfire: 'once' }])).toEqual(
      [],
    );
    expect(
      problemsOf([
        { name: 'r', kind: 'retention', schedule: '0 3 * * *', headers: { A: 'b' } },
        { name: 's', kind: 'Retention', schedule: '0 3 * * *' },
      ]),
    ).toEqual([
      'SCHEDULES_FILE[0].headers: only a poll job takes headers (this one is retention)',
      'SCHEDULES_FILE[1].kind: unknown kind "Retention" (known: poll, digest, backup, retention)',
    ]);
  });

  it('names every problem as SCHEDULES_FILE[i].field, and never shows a header value', () => {
    const problems = problemsOf([
      {
        name: 'a',
        kind: 'poll',
        schedule: '61 * * * *',
        url: 'file:///etc/passwd',
        headers: { 'X-Key': 'hunter2\r\nX: y' },
      },
      { name: 'a', kind: 'mail', schedule: '* * * * * *', timezone: 'Mars/Olympus', misfire: 'later' },
      { name: 'b', kind: 'backup', schedule: '0 3 * * *', url: 'https://x.example/', extra: 1 },
      { name: 'c', kind: 'poll', schedule: '0 3 * * *' },
      { kind: 'digest', schedule: 'every day' },
    ]);
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^SCHEDULES_FILE\[0\]\.schedule: is not a valid cron expression/),
        'SCHEDULES_FILE[0].url: must use http or https (got "file")',
        'SCHEDULES_FILE[0].headers.X-Key: must not contain line breaks or NUL',
        'SCHEDULES_FILE[1].name: "a" is already used by SCHEDULES_FILE[0]',
        'SCHEDULES_FILE[1].kind: unknown kind "mail" (known: poll, digest, backup, retention)',
        expect.stringMatching(
          /^SCHEDULES_FILE\[1\]\.schedule: must be a 5-field cron expression .* got 6 fields$/,
        ),
        expect.stringMatching(/^SCHEDULES_FILE\[1\]\.timezone: unknown time zone "Mars\/Olympus"/),
        'SCHEDULES_FILE[1].misfire: must be one of skip, once, all',
        'SCHEDULES_FILE[2].url: only a poll job takes url (this one is backup)',
        'SCHEDULES_FILE[2]: unknown field "extra"',
        'SCHEDULES_FILE[3].url: is required for kind poll',
        expect.stringMatching(/^SCHEDULES_FILE\[4\]: must have required property 'name'/),
        expect.stringMatching(/^SCHEDULES_FILE\[4\]\.schedule: must be a 5-field cron expression/),
      ]),
    );
    expect(problems.join('\n')).not.toContain('hunter2');
  });

  it('reads a file, and says so when it is not JSON without quoting it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'postroom-schedules-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify([{ name: 'n', kind: 'backup', schedule: '30 2 * * *' }]));
    expect(loadSchedulesFile(good)).toHaveLength(1);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '[{"name": "n", "headers": {"k": "secret-value"}\n,,]');
    expect(() => loadSchedulesFile(bad)).toThrow(/SCHEDULES_FILE: .*bad\.json is not valid JSON \(line 2\)/);
    try {
      loadSchedulesFile(bad);
    } catch (err) {
      expect((err as Error).message).not.toContain('secret-value');
    }
    expect(() => loadSchedulesFile(join(dir, 'missing.json'))).toThrow(
      /SCHEDULES_FILE: cannot read .* \(ENOENT\)/,
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it('computes due times in the time zone, across daylight-saving changes as croner documents', () => {
    const cron = cronOf({ schedule: '30 2 * * *', timezone: 'Europe/Berlin' });
    // 2026-03-29: clocks jump from 02:00 to 03:00 in Berlin; croner runs a fixed-time job at the first valid time.
    expect(cron.nextRun(new Date('2026-03-28T12:00:00Z'))?.toISOString()).toBe('2026-03-29T01:00:00.000Z');
    // 2026-10-25: 02:30 happens twice; it runs once.
    const oct = cron.nextRuns(2, new Date('2026-10-24T12:00:00Z')).map((d) => d.toISOString());
    expect(oct).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
  });
});
