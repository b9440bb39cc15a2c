import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  FIXTURE_WORDS,
  liveGroupMembers,
  NO_SOFFICE,
  officeFixture,
  pdfText,
  processesMentioning,
  SOFFICE,
} from '../../test/office.js';
import { ConversionFailed } from './converter.js';
import { createLocalConverter } from './local-converter.js';

if (!SOFFICE) console.warn(`local-converter.int.test.ts skipped: ${NO_SOFFICE}`);

const CANARY = '/tmp/postroom-macro-canary';
/**
 * This file's conversions make their job folders here, not in the temp folder itself: other test files
 * convert at the same time (conversion.int.test.ts), and their folders are not this file's leftovers.
 */
const TEMP = mkdtempSync(join(tmpdir(), 'postroom-local-converter-test-'));
afterAll(() => rmSync(TEMP, { recursive: true, force: true }));

describe.skipIf(!SOFFICE)('local converter (LibreOffice headless)', () => {
  /** A converter that records each job's process group and temp folder. */
  function converter(concurrency = 1) {
    const jobs: { pgid: number; dir: string }[] = [];
    return {
      jobs,
      convert: createLocalConverter({ concurrency, tempDir: TEMP, onStart: (j) => jobs.push(j) }),
    };
  }

  /** Nothing of a job is left: no process of its group, none naming its folder, no folder. */
  function expectNothingLeft(jobs: { pgid: number; dir: string }[]) {
    expect(jobs.length).toBeGreaterThan(0);
    for (const job of jobs) {
      expect(liveGroupMembers(job.pgid), `process group ${job.pgid}`).toEqual([]);
      expect(processesMentioning(job.dir)).toEqual([]);
      expect(existsSync(job.dir), job.dir).toBe(false);
    }
  }

  it('converts .docx, .xlsx, .pptx, .odt and .rtf to PDFs holding the documents words', async () => {
    const { jobs, convert } = converter(2);
    const kinds = ['docx', 'xlsx', 'pptx', 'odt', 'rtf'];
    const pdfs = await Promise.all(
      kinds.map((ext) => convert.convert({ bytes: officeFixture(`words.${ext}`), extension: ext }, 60_000)),
    );
    for (const [i, pdf] of pdfs.entries()) {
      expect(pdf.subarray(0, 5).toString('latin1'), kinds[i]).toBe('%PDF-');
      const text = pdfText(pdf).toLowerCase();
      for (const word of FIXTURE_WORDS) expect(text, `${kinds[i]} PDF`).toContain(word);
    }
    expect(jobs).toHaveLength(5);
    expectNothingLeft(jobs);
  }, 120_000);

  it('converts a document whose macro is bound to its load event without running the macro', async () => {
    rmSync(CANARY, { force: true });
    const { jobs, convert } = converter();
    const pdf = await convert.convert({ bytes: officeFixture('macro.odt'), extension: 'odt' }, 60_000);
    expect(pdfText(pdf)).toContain('quokka');
    expect(existsSync(CANARY), 'the macro wrote its canary file').toBe(false);
    expectNothingLeft(jobs);
  }, 60_000);

  it('fails a damaged document cleanly, with a reason, and leaves no process', async () => {
    const { jobs, convert } = converter();
    const error = await convert
      .convert({ bytes: officeFixture('broken.docx'), extension: 'docx' }, 60_000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConversionFailed);
    expect((error as ConversionFailed).code).toBe('CONVERT.FAILED');
    expect((error as Error).message).toMatch(/LibreOffice could not convert the document/);
    expectNothingLeft(jobs);
  }, 60_000);

  it('kills the whole process group at the time limit and says so', async () => {
    const { jobs, convert } = converter();
    // soffice alone takes longer than this to start: the conversion is still running when the limit passes
    const error = await convert
      .convert({ bytes: officeFixture('words.docx'), extension: 'docx' }, 300)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConversionFailed);
    expect((error as ConversionFailed).code).toBe('CONVERT.TIMEOUT');
    expect((error as Error).message).toMatch(/longer than the 0\.3 s limit/);
    expectNothingLeft(jobs);
  }, 30_000);

  it('runs at most the configured number of soffice processes at once', async () => {
    let running = 0;
    let most = 0;
    const convert = createLocalConverter({
      concurrency: 1,
      tempDir: TEMP,
      onStart: () => {
        running += 1;
        most = Math.max(most, running);
      },
    });
    const one = (ext: string) =>
      convert
        .convert({ bytes: officeFixture(`words.${ext}`), extension: ext }, 60_000)
        .finally(() => (running -= 1));
    await Promise.all([one('odt'), one('rtf')]);
    expect(most).toBe(1);
  }, 120_000);

  it('leaves no temp folders of its own behind', () => {
    expect(
      readdirSync(TEMP).filter(
        (f) => f.startsWith('postroom-convert-') && existsSync(`${TEMP}/${f}/profile`),
      ),
    ).toEqual([]);
  });
});
