#!/usr/bin/env node
// Evaluates every PromQL expression of the Grafana dashboards (infra/grafana/dashboards/*.json)
// through a running Prometheus, the way Grafana would when it draws them, and says which panels have
// data. Exits 1 when any expression fails to evaluate (a syntax error, a bad function, a variable left
// unsubstituted), or when a panel named with --require has no non-zero value in the window. No
// dependencies: Node 20+ only.
//
//   node scripts/check-dashboards.mjs http://127.0.0.1:9090 [--window 900] [--require "Panel title"]...
//
// Grafana's variables are filled in as Grafana would for a 15 s scrape interval: $__rate_interval 1m,
// $__interval 15s, $__range the window; dashboard variables take their current value, or `.*` for
// "All" (the dashboards use them in =~ matchers). Each expression is run once as an instant query
// (/api/v1/query, as stat panels are) and once over the window (/api/v1/query_range, as graphs are).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const base = (args.find((a) => !a.startsWith('--') && /^https?:/.test(a)) ?? 'http://127.0.0.1:9090').replace(
  /\/$/,
  '',
);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const windowSeconds = Number(opt('window', '900'));
const required = args.flatMap((a, i) => (args[i - 1] === '--require' ? [a] : []));
const dir = opt('dir', join(dirname(fileURLToPath(import.meta.url)), '../infra/grafana/dashboards'));
const STEP_SECONDS = 15;

/** Grafana's built-in variables, for a 15 s scrape interval and the checked window. */
const builtins = {
  __rate_interval: '1m',
  __interval: `${STEP_SECONDS}s`,
  __interval_ms: String(STEP_SECONDS * 1000),
  __range: `${windowSeconds}s`,
  __range_s: String(windowSeconds),
  __range_ms: String(windowSeconds * 1000),
};

/** A dashboard variable's value: its current one, or `.*` for All / none. */
function variableValues(dashboard) {
  const values = { ...builtins };
  for (const v of dashboard.templating?.list ?? []) {
    if (!v.name || v.type === 'datasource') continue;
    let value = v.current?.value ?? v.query ?? '';
    if (Array.isArray(value)) value = value.length === 1 ? value[0] : `(${value.join('|')})`;
    if (value === '$__all' || value === '' || v.includeAll) value = v.allValue ?? '.*';
    values[v.name] = String(value);
  }
  return values;
}

/** `$name`, `${name}`, `${name:format}` and `[[name]]` replaced; unknown names are left (and fail). */
function substitute(expr, values) {
  const get = (name, whole) => (Object.hasOwn(values, name) ? values[name] : whole);
  return expr
    .replace(/\$\{(\w+)(?::\w+)?\}/g, (whole, name) => get(name, whole))
    .replace(/\[\[(\w+)\]\]/g, (whole, name) => get(name, whole))
    .replace(/\$(\w+)/g, (whole, name) => get(name, whole));
}

/** Every panel with its PromQL expressions, rows' nested panels included. */
function panels(dashboard) {
  const out = [];
  const walk = (list) => {
    for (const p of list ?? []) {
      const exprs = (p.targets ?? []).map((t) => t.expr).filter((e) => typeof e === 'string' && e.trim());
      if (exprs.length > 0) out.push({ title: p.title ?? '(untitled)', exprs });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  return out;
}

async function prometheus(path, params) {
  const res = await fetch(`${base}${path}?${new URLSearchParams(params)}`, {
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.json().catch(() => ({ status: 'error', error: `HTTP ${res.status}, not JSON` }));
  if (body.status !== 'success') throw new Error(`${body.errorType ?? 'error'}: ${body.error ?? res.status}`);
  return body.data;
}

/** Values of a query result: instant vectors, scalars and range matrices alike. */
function samples(data) {
  if (data.resultType === 'scalar') return [Number(data.result[1])];
  return data.result.flatMap((s) => (s.values ?? [s.value]).map((v) => Number(v[1])));
}

try {
  await fetch(`${base}/-/ready`, { signal: AbortSignal.timeout(10_000) });
} catch (err) {
  console.error(`check-dashboards: Prometheus does not answer at ${base}: ${err.message}`);
  process.exit(2);
}

const now = Math.floor(Date.now() / 1000);
const errors = [];
const missing = [];
const seen = new Set();
let checked = 0;
for (const file of readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()) {
  const dashboard = JSON.parse(readFileSync(join(dir, file), 'utf8'));
  const values = variableValues(dashboard);
  console.log(`${file} (${dashboard.title ?? 'untitled'}):`);
  for (const panel of panels(dashboard)) {
    seen.add(panel.title);
    let all = [];
    for (const raw of panel.exprs) {
      const query = substitute(raw, values);
      checked++;
      try {
        await prometheus('/api/v1/query', { query, time: String(now) });
        const range = await prometheus('/api/v1/query_range', {
          query,
          start: String(now - windowSeconds),
          end: String(now),
          step: String(STEP_SECONDS),
        });
        all = all.concat(samples(range).filter((v) => !Number.isNaN(v)));
      } catch (err) {
        errors.push(`${file} "${panel.title}": ${query}\n    ${err.message}`);
      }
    }
    const state = all.length === 0 ? 'no data' : all.some((v) => v !== 0) ? 'data' : 'zeros';
    if (state !== 'data' && required.includes(panel.title))
      missing.push(`${file} "${panel.title}" (${state})`);
    console.log(`  ${state.padEnd(7)} ${panel.title}`);
  }
}
console.log(`${checked} expressions evaluated over the last ${windowSeconds} s`);
for (const e of errors) console.error(`query failed: ${e}`);
for (const m of missing) console.error(`required panel without data: ${m}`);
const unknown = required.filter((t) => !seen.has(t));
for (const t of unknown) console.error(`required panel not in any dashboard: "${t}"`);
process.exit(errors.length > 0 || missing.length > 0 || unknown.length > 0 ? 1 : 0);
