/**
 * The alert rules pass promtool's checks and its unit tests (alerts.test.yml), and every alert's
 * runbook link names a section of docs/operations.md that exists. promtool comes from
 * scripts/install-promtool.sh (CI runs it).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const run = promisify(execFile);
const DIR = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(DIR, '../..');

async function promtool(...args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd: DIR });
    return stdout + stderr;
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string };
    if (e.code === 'ENOENT')
      throw new Error(
        'promtool is not installed: run scripts/install-promtool.sh, or make Docker available (test/tools-container.ts)',
      );
    throw new Error(`promtool ${args.join(' ')} failed:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

interface Rule {
  alert: string;
  expr: string;
  annotations: { summary?: string; runbook?: string };
}

const rules = (
  parse(readFileSync(join(DIR, 'alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);

/** GitHub's anchor of a Markdown heading. */
const anchor = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^a-z0-9 -]/g, '')
    .replace(/ /g, '-');

describe('Prometheus alert rules (infra/prometheus)', () => {
  it('pass promtool check rules and check config', async () => {
    expect(await promtool('check', 'rules', 'alerts.yml')).toMatch(/SUCCESS: \d+ rules found/);
    expect(await promtool('check', 'config', 'prometheus.yml')).toMatch(/SUCCESS/);
  });

  it("pass promtool's unit tests, which cover every alert", async () => {
    expect(await promtool('test', 'rules', 'alerts.test.yml')).toMatch(/SUCCESS/);
    const tests = readFileSync(join(DIR, 'alerts.test.yml'), 'utf8');
    for (const r of rules) expect(tests, r.alert).toContain(`alertname: ${r.alert}\n`);
  });

  it('give every alert a summary and a runbook section that exists in docs/operations.md', () => {
    const headings = new Set(
      readFileSync(join(REPO, 'docs/operations.md'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('#'))
        .map((l) => anchor(l.replace(/^#+\s*/, ''))),
    );
    expect(rules.length).toBeGreaterThanOrEqual(6);
    for (const r of rules) {
      expect(r.annotations.summary, r.alert).toBeTruthy();
      const [file, section] = (r.annotations.runbook ?? '').split('#');
      expect(file, r.alert).toBe('docs/operations.md');
      expect(headings.has(section ?? ''), `${r.alert}: no section #${section}`).toBe(true);
    }
  });
});
