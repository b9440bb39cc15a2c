/**
 * `npm run bench:convert`: document conversions per minute and peak memory with CONVERTER=local.
 *
 * Makes a Word document of about three pages (LibreOffice writes it from HTML), then converts it
 * `--count` times (default 12) with at most `--concurrency` soffice processes at once (default 1, as
 * CONVERT_CONCURRENCY), each in its own throwaway profile, as the convert role does. While they run,
 * the resident memory of every process of each job's process group is summed every 50 ms: the peak is
 * what the convert role's container needs on top of Node. Prints a table and one JSON line.
 *
 *   npm run bench:convert -- --count 20 --concurrency 2
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalConverter } from '../../consumers/conversion/local-converter.js';
import { findOnPath } from '../../infra/config.js';

function flag(name: string, fallback: number): number {
  const args = process.argv.slice(2);
  const i = args.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i < 0) return fallback;
  const raw = args[i]!.includes('=') ? args[i]!.split('=')[1] : args[i + 1];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive whole number`);
  return n;
}

/** Resident memory (bytes) of the live processes of these process groups, from /proc. */
function groupRss(pgids: ReadonlySet<number>): number {
  let total = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (!pgids.has(Number(fields[2])) || fields[0] === 'Z') continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      total += Number(rss?.[1] ?? 0) * 1024;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** A Word document of about three pages, made by LibreOffice from HTML. */
async function sampleDocx(): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'postroom-bench-doc-'));
  try {
    const paragraph =
      '<p>Postroom files every attachment once, converts office documents to PDF and shows their first page as a thumbnail. ' +
      'This paragraph repeats to fill pages with ordinary text, a table follows.</p>';
    const rows = Array.from(
      { length: 40 },
      (_, i) => `<tr><td>Item ${i + 1}</td><td>${(i * 17.5).toFixed(2)}</td></tr>`,
    );
    const html = `<html><body><h1>Benchmark document</h1>${paragraph.repeat(30)}<table border="1">${rows.join('')}</table></body></html>`;
    await writeFile(join(dir, 'sample.html'), html);
    execFileSync(
      'soffice',
      [
        `-env:UserInstallation=file://${dir}/profile`,
        '--headless',
        '--convert-to',
        'docx:MS Word 2007 XML',
        '--outdir',
        dir,
        join(dir, 'sample.html'),
      ],
      { stdio: 'ignore', env: { PATH: process.env['PATH'], HOME: dir } },
    );
    const made = (await readdir(dir)).find((f) => f.endsWith('.docx'));
    if (!made) throw new Error('LibreOffice did not write the sample document');
    return await readFile(join(dir, made));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!findOnPath('soffice', process.env['PATH'])) {
    process.stderr.write(
      'bench:convert needs LibreOffice (soffice) on the PATH: bash scripts/install-converter.sh\n',
    );
    process.exit(1);
  }
  const count = flag('count', 12);
  const concurrency = flag('concurrency', 1);
  const docx = await sampleDocx();
  const live = new Set<number>();
  const converter = createLocalConverter({ concurrency, onStart: ({ pgid }) => live.add(pgid) });
  let peak = 0;
  let peakNode = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peak = Math.max(peak, groupRss(live));
    peakNode = Math.max(peakNode, process.memoryUsage().rss);
  }, 50);
  const durations: number[] = [];
  let pdfBytes = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: count }, async () => {
      const t0 = process.hrtime.bigint();
      const pdf = await converter.convert({ bytes: docx, extension: 'docx' }, 120_000);
      durations.push(Number(process.hrtime.bigint() - t0) / 1e6);
      pdfBytes = pdf.length;
    }),
  );
  const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
  clearInterval(sampler);
  durations.sort((a, b) => a - b);
  const perMinute = (count / wallMs) * 60_000;
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const result = {
    count,
    concurrency,
    docxBytes: docx.length,
    pdfBytes,
    wallSeconds: Math.round(wallMs / 100) / 10,
    conversionsPerMinute: Math.round(perMinute * 10) / 10,
    medianMs: Math.round(durations[Math.floor(durations.length / 2)] ?? 0),
    maxMs: Math.round(durations.at(-1) ?? 0),
    peakSofficeRssBytes: peak,
    peakNodeRssBytes: peakNode,
  };
  process.stdout.write(
    [
      `document conversion (CONVERTER=local), ${count} × a ${docx.length}-byte .docx, ${concurrency} at once`,
      `  conversions per minute  ${result.conversionsPerMinute}`,
      `  per conversion          median ${result.medianMs} ms, slowest ${result.maxMs} ms (queue wait included)`,
      `  peak memory             soffice ${mib(peak)} (all its processes), Node ${mib(peakNode)}`,
      JSON.stringify(result),
      '',
    ].join('\n'),
  );
}

void main();
