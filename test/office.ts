/**
 * Office documents for the conversion tests, and the checks they need: the committed fixtures of
 * `test/fixtures/office/` (made by LibreOffice from `words.html`, `words.csv` and `words.fodp`; see
 * its README), the text of a PDF (`pdftotext`), and whether a conversion left any process behind.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findOnPath } from '../infra/config.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'office');

/** Words every `words.*` fixture holds, and so every PDF made from one. */
export const FIXTURE_WORDS = ['zebra', 'mandolin', 'quokka'] as const;

/** The bytes of one fixture (`words.docx`, `macro.odt`, `broken.docx`...). */
export function officeFixture(name: string): Buffer {
  return readFileSync(join(DIR, name));
}

/** The path of soffice, or null (the tests that need it then skip, saying why). */
export const SOFFICE = findOnPath('soffice', process.env['PATH']);
/** The path of pdftotext, or null. */
export const PDFTOTEXT = findOnPath('pdftotext', process.env['PATH']);
/** Why soffice tests skip, for the log. */
export const NO_SOFFICE =
  'LibreOffice (soffice) is not on the PATH: run scripts/install-converter.sh (CI does), or make Docker available (test/tools-container.ts), to run these tests';

/** The text of a PDF, by pdftotext. */
export function pdfText(pdf: Buffer): string {
  return execFileSync('pdftotext', ['-', '-'], { input: pdf }).toString('utf8');
}

/** Processes whose command line mentions `needle` (a job's temp folder): what a conversion left behind. */
export function processesMentioning(needle: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(needle)) found.push(`${pid}: ${cmdline.slice(0, 200)}`);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/**
 * Live processes of the process group `pgid` (zombies left out: a dead process waiting for its parent
 * to reap it runs nothing; soffice's `gpgconf` children end as zombies of init, which a container's
 * init reaps).
 */
export function liveGroupMembers(pgid: number): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') found.push(stat.slice(0, 60));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
