/**
 * The Grafana dashboards (infra/grafana/dashboards) name only metrics that exist: every PromQL
 * expression is read, and each `postroom_*` metric it names must be exposed by a running Postroom
 * (every role, real RabbitMQ and MariaDB), each `rabbitmq_*` metric by a real RabbitMQ node with its
 * Prometheus plugin, on the paths Prometheus scrapes (with a `queue` label where a panel splits by
 * queue). A renamed metric breaks this test, not the dashboard.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startPostroom, type Postroom } from '../../main.js';
import { deleteTestTopology, testLogger, testNamespace } from '../../test/broker.js';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { imapEnv, startDovecot, type DovecotServer } from '../../test/dovecot.js';
import { startTlsRabbitmq, type ThrowawayRabbitmq } from '../../test/throwaway-servers.js';
import { postroomTopology } from '../broker/subscriptions.js';
import { loadConfig } from '../config.js';
import { TEST_AMQP_URL } from '../../test/env.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'dashboards');

interface Panel {
  title?: string;
  type?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

/** Every PromQL expression of a dashboard file, with the panel it belongs to. */
function expressions(file: string): Array<{ panel: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(join(DIR, file), 'utf8')) as { panels?: Panel[] };
  const out: Array<{ panel: string; expr: string }> = [];
  const walk = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title ?? '?', expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels ?? []);
  return out;
}

/** Metric names in a PromQL expression with a given prefix (label names and functions are not). */
function metricNames(expr: string, prefix: string): string[] {
  const noLabels = expr.replace(/\{[^}]*\}/g, '{}');
  return [...noLabels.matchAll(new RegExp(`\\b${prefix}[a-z0-9_]*`, 'g'))].map((m) => m[0]);
}

/** The metric families a Prometheus text exposition declares (`# TYPE` lines) and the samples' names. */
function exposed(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type?.[1]) {
      names.add(type[1]);
      if (type[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${type[1]}${s}`);
      if (type[2] === 'summary') for (const s of ['_sum', '_count']) names.add(`${type[1]}${s}`);
    } else if (/^[a-z]/.test(line)) names.add(line.split(/[{ ]/)[0] ?? '');
  }
  return names;
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));

interface ScrapeJob {
  job_name: string;
  metrics_path?: string;
  static_configs?: Array<{ targets: string[] }>;
  metric_relabel_configs?: Array<{ source_labels?: string[]; regex?: string; action?: string }>;
}

/**
 * The jobs of infra/prometheus/prometheus.yml that scrape RabbitMQ's plugin (port 15692): each with
 * its path and, when it keeps only some metrics (`action: keep` on `__name__`), which.
 */
function rabbitmqJobs(): Array<{ path: string; keeps: (name: string) => boolean }> {
  const config = parse(readFileSync(join(DIR, '../../prometheus/prometheus.yml'), 'utf8')) as {
    scrape_configs: ScrapeJob[];
  };
  return config.scrape_configs
    .filter((c) => c.static_configs?.some((s) => s.targets.some((t) => t.endsWith(':15692'))))
    .map((c) => {
      const keep = c.metric_relabel_configs?.find(
        (r) => r.action === 'keep' && r.source_labels?.join() === '__name__',
      );
      const pattern = keep?.regex ? new RegExp(`^(?:${keep.regex})$`) : null;
      return { path: c.metrics_path ?? '/metrics', keeps: (name) => !pattern || pattern.test(name) };
    });
}

/** The expressions of the alert rules (infra/prometheus/alerts.yml): they must name real metrics too. */
function alertExpressions(): Array<{ panel: string; expr: string }> {
  const doc = parse(readFileSync(join(DIR, '../../prometheus/alerts.yml'), 'utf8')) as {
    groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
  };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ panel: r.alert, expr: r.expr })));
}

describe('Grafana dashboards', () => {
  it('are valid dashboards, each panel with at least one query', () => {
    expect(files.sort()).toEqual(['postroom-pipeline.json', 'rabbitmq.json']);
    for (const f of files) {
      const d = JSON.parse(readFileSync(join(DIR, f), 'utf8')) as { uid?: string; panels?: Panel[] };
      expect(d.uid, f).toMatch(/^postroom-/);
      for (const p of d.panels ?? [])
        if (p.type !== 'row') expect(p.targets?.length, `${f}: ${p.title}`).toBeGreaterThan(0);
    }
  });

  describe('name only metrics a running Postroom exposes', () => {
    let t: TestDatabase;
    let dovecot: DovecotServer;
    let app: Postroom;
    const namespace = testNamespace('dash');
    beforeAll(async () => {
      t = await createTestDatabase('dash');
      dovecot = await startDovecot();
      app = await startPostroom(
        loadConfig({
          AMQP_URL: TEST_AMQP_URL,
          ...imapEnv(dovecot),
          ROLES: 'all',
          MYSQL_URL: t.url,
          API_TOKENS: 'dashboard-test-token',
        }),
        { log: testLogger(), namespace, httpPort: 0 },
      );
    });
    afterAll(async () => {
      await app?.stop();
      await deleteTestTopology(postroomTopology({ namespace }));
      await dovecot?.stop();
      await t?.drop();
    });

    it('every postroom_* metric of every dashboard and alert rule is on /metrics', async () => {
      const text = await (await fetch(`http://127.0.0.1:${app.port}/metrics`)).text();
      const have = exposed(text);
      const missing: string[] = [];
      let checked = 0;
      for (const f of [...files, 'alerts.yml'])
        for (const { panel, expr } of f === 'alerts.yml' ? alertExpressions() : expressions(f))
          for (const name of metricNames(expr, 'postroom_')) {
            checked++;
            if (!have.has(name)) missing.push(`${f} "${panel}": ${name}`);
          }
      expect(missing).toEqual([]);
      expect(checked).toBeGreaterThan(20);
    });
  });

  describe("name only metrics RabbitMQ's Prometheus plugin exposes", () => {
    let mq: ThrowawayRabbitmq;
    beforeAll(async () => {
      mq = await startTlsRabbitmq({ plain: true, prometheus: true });
      // A queue with a message and a consumer, so the per-queue families have samples.
      const conn = await connect(`amqp://guest:guest@127.0.0.1:${mq.port}/`);
      const ch = await conn.createChannel();
      await ch.assertQueue('postroom.dashboard-check', { durable: true });
      ch.sendToQueue('postroom.dashboard-check', Buffer.from('x'));
      await ch.close();
      await conn.close();
    }, 150_000);
    afterAll(async () => {
      await mq?.stop();
    }, 60_000);

    it('every rabbitmq_* metric of the dashboards is on the paths Prometheus scrapes, per queue where a panel splits by queue', async () => {
      // What Prometheus ends up with: the samples of every job, after its keep rule.
      let text = '';
      for (const job of rabbitmqJobs()) {
        const body = await (await fetch(`http://127.0.0.1:${mq.prometheusPort}${job.path}`)).text();
        for (const line of body.split('\n')) {
          const name = /^# TYPE (\S+)/.exec(line)?.[1] ?? (line.startsWith('#') ? '' : line.split(/[{ ]/)[0]);
          if (name && job.keeps(name)) text += `${line}\n`;
        }
      }
      const have = exposed(text);
      const missing: string[] = [];
      let checked = 0;
      for (const f of files)
        for (const { panel, expr } of expressions(f)) {
          const byQueue = /\b(?:by|without)\s*\([^)]*\bqueue\b|\{[^}]*\bqueue\s*[=!]/.test(expr);
          for (const name of metricNames(expr, 'rabbitmq_')) {
            checked++;
            if (!have.has(name)) missing.push(`${f} "${panel}": ${name}`);
            else if (byQueue && !new RegExp(`^${name}\\{[^}]*\\bqueue="`, 'm').test(text))
              missing.push(`${f} "${panel}": ${name} has no queue label`);
          }
        }
      expect(missing).toEqual([]);
      expect(checked).toBeGreaterThan(5);
    });
  });
});
