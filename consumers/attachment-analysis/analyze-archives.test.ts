// Archives, time limits and read failures; documents, programs and images are in analyze.test.ts.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../../infra/errors.js';
import * as files from '../../test/file-fixtures.js';
import { MIB, fixtureInput } from '../../test/file-fixtures.js';
import { analyzeAttachment } from './analyze.js';
import type { AnalysisLimits } from './analyze.js';

let tempDir: string;
let limits: AnalysisLimits;

beforeAll(async () => {
  tempDir = await mkdtemp(join(tmpdir(), 'analysis-test-'));
  limits = { attachmentMaxBytes: 25 * MIB, imageMaxPixels: 100_000_000, timeoutMs: 20_000, tempDir };
});

afterAll(async () => {
  // every analysis, time-outs included, removes its temp copy
  expect(await readdir(tempDir)).toEqual([]);
  await rm(tempDir, { recursive: true, force: true });
});

const analyze = (
  bytes: Buffer,
  filename: string,
  declaredType: string,
  extra: Partial<AnalysisLimits> = {},
) => analyzeAttachment(fixtureInput(bytes, filename, declaredType), { ...limits, ...extra });

describe('zip archives', () => {
  it('accepts a zip of text files, listing them without extracting', async () => {
    const result = await analyze(files.zipOfTexts(), 'notes.zip', 'application/zip');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'application/zip' });
    expect(result.archive?.entries.map((e) => e.name)).toEqual([
      'notes/readme.txt',
      'notes/todo.md',
      'data.csv',
    ]);
    expect(result.archive?.entries[0]).toEqual({
      name: 'notes/readme.txt',
      size: 480,
      compressedSize: expect.any(Number),
    });
    expect(result.archive).toMatchObject({ fileCount: 3, encrypted: false });
    expect(result.archive?.ratio).toBeGreaterThan(1);
    expect(result.reason).toBe('Zip archive, 3 files, 588 bytes unpacked, as declared.');
  });

  it('accepts a Word document (a zip inside) and lists its parts', async () => {
    const docxType = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
    const result = await analyze(files.docx(), 'letter.docx', docxType);
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: docxType });
    expect(result.archive?.fileCount).toBe(3);
    expect(result.reason).toMatch(/^Word document, 3 files, .* as declared\.$/);
  });

  it('quarantines a zip holding a program', async () => {
    const result = await analyze(files.zipWithExecutable(), 'invoices.zip', 'application/zip');
    expect(result).toMatchObject({ verdict: 'quarantined', detectedType: 'application/zip' });
    expect(result.reason).toBe(
      'The zip archive holds programs or scripts ("tools/invoice.pdf.exe"); archives with programs inside are quarantined.',
    );
    expect(result.archive?.entries.map((e) => e.name)).toEqual(['invoice.pdf', 'tools/invoice.pdf.exe']);
  });

  it('quarantines a zip bomb by ratio (50 MiB of zeros in 50 KiB)', async () => {
    const result = await analyze(files.zipBomb(50), 'report.zip', 'application/zip');
    expect(result).toMatchObject({ verdict: 'quarantined', detectedType: 'application/zip' });
    expect(result.archive?.ratio).toBeGreaterThan(1000);
    expect(result.archive?.uncompressedBytes).toBe(50 * MIB + 20);
    expect(result.reason).toMatch(
      /^The zip archive would expand from [\d.]+ KiB to 50 MiB \(\d+ times\); .*zip bombs\.$/,
    );
  });

  it('quarantines a zip over the unpacked-size bound', async () => {
    const result = await analyze(files.zipBomb(3), 'a.zip', 'application/zip', {
      maxZipUncompressedBytes: 2 * MIB,
    });
    expect(result.verdict).toBe('quarantined');
    expect(result.reason).toMatch(/would expand to 3 MiB, more than the 2 MiB allowed/);
  });

  it('quarantines a zip whose entry would unpack outside its folder', async () => {
    const result = await analyze(
      files.zip([{ name: '../../.bashrc', data: Buffer.from('x') }]),
      'a.zip',
      'application/zip',
    );
    expect(result).toMatchObject({ verdict: 'quarantined', archive: null });
    expect(result.reason).toMatch(/outside its folder \("\.\.\/\.\.\/\.bashrc"\)/);
  });

  it('accepts a password-protected zip after checking the names, and says so', async () => {
    const bytes = files.zip([{ name: 'salary.xlsx', data: Buffer.from('secret'), encrypted: true }]);
    const result = await analyze(bytes, 'salary.zip', 'application/zip');
    expect(result).toMatchObject({ verdict: 'accepted', archive: { encrypted: true } });
    expect(result.reason).toMatch(/password-protected \(the names were checked, the contents could not be\)/);
  });

  it('rejects a damaged zip', async () => {
    const result = await analyze(files.truncatedZip(), 'notes.zip', 'application/zip');
    expect(result).toMatchObject({ verdict: 'rejected', detectedType: 'application/zip', archive: null });
    expect(result.reason).toMatch(
      /^The zip archive is damaged, so its contents cannot be listed \(End of central directory/,
    );
  });
});

describe('memory or temp file', () => {
  it('judges a file the same in memory, from a temp file, and when it passes the bound mid-stream', async () => {
    const bytes = files.zipOfTexts();
    const inMemory = await analyze(bytes, 'notes.zip', 'application/zip');
    expect(inMemory.verdict).toBe('accepted');
    expect(await analyze(bytes, 'notes.zip', 'application/zip', { memoryMaxBytes: 0 })).toEqual(inMemory);
    const half = Math.floor(bytes.length / 2);
    expect(await analyze(bytes, 'notes.zip', 'application/zip', { memoryMaxBytes: half })).toEqual(inMemory);
  });
});

describe('time limit and failures', () => {
  it('rejects a file whose inspection passes the time limit', async () => {
    const bytes = files.zipOfManyFiles(10_000); // yauzl lists about 10 entries a millisecond from a file
    const started = performance.now();
    // from the temp file: in memory the listing is fast enough to finish within the limit
    const result = await analyze(bytes, 'many.zip', 'application/zip', { timeoutMs: 250, memoryMaxBytes: 0 });
    console.log(`time limit 250 ms: verdict after ${(performance.now() - started).toFixed(0)} ms`);
    expect(result).toMatchObject({ verdict: 'rejected', detectedType: null });
    expect(result.reason).toBe(
      'Analysis took longer than the 250 ms limit and was stopped; the file may be damaged or unusually complex.',
    );
  });

  it('throws a RetryableError when the blob stream stalls past the time limit', async () => {
    const input = { ...fixtureInput(files.pdf(), 'a.pdf', 'application/pdf') };
    input.open = async () => new Readable({ read() {} }); // never sends a byte
    const failure = analyzeAttachment(input, { ...limits, timeoutMs: 100 });
    await expect(failure).rejects.toBeInstanceOf(RetryableError);
    await expect(failure).rejects.toMatchObject({ code: 'ANALYSIS.READ_TIMEOUT' });
  });

  it('throws a RetryableError when the blob store cannot be reached', async () => {
    const input = { ...fixtureInput(files.pdf(), 'a.pdf', 'application/pdf') };
    input.open = () =>
      Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    await expect(analyzeAttachment(input, limits)).rejects.toMatchObject({
      code: 'ANALYSIS.READ_FAILED',
      retryable: true,
    });
  });

  it('throws a RetryableError when the stream breaks halfway', async () => {
    const input = { ...fixtureInput(files.pdf(), 'a.pdf', 'application/pdf') };
    input.open = async () =>
      new Readable({
        read() {
          this.push(Buffer.from('%PDF-1.4\n'));
          this.destroy(new Error('socket hang up'));
        },
      });
    await expect(analyzeAttachment(input, limits)).rejects.toMatchObject({ code: 'ANALYSIS.READ_FAILED' });
  });

  it("passes the blob store's own errors through unchanged", async () => {
    const input = { ...fixtureInput(files.pdf(), 'a.pdf', 'application/pdf') };
    const missing = new PermanentError('BLOB.NOT_FOUND', 'no blob aaaa');
    input.open = () => Promise.reject(missing);
    await expect(analyzeAttachment(input, limits)).rejects.toBe(missing);
  });
});
