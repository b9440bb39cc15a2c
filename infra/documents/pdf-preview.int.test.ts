import { deflateSync } from 'node:zlib';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { pdf } from '../../test/file-fixtures.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasPdfObject, pdfPreviewAvailable, renderPdfPreview } from './pdf-preview.js';
import { runToolHere } from './run-tool.js';

const available = pdfPreviewAvailable();
if (!available)
  console.warn(
    'pdf-preview.int.test.ts skipped: pdftoppm (poppler-utils) is not on the PATH; run scripts/install-converter.sh, or make Docker available',
  );

/** A one-page PDF with this page box and these (Flate-compressed) page contents. */
function pdfWith(mediaBox: string, contents: Buffer): Buffer {
  const stream = deflateSync(contents);
  const objects: Buffer[] = [
    Buffer.from('<< /Type /Catalog /Pages 2 0 R >>'),
    Buffer.from('<< /Type /Pages /Kids [3 0 R] /Count 1 >>'),
    Buffer.from(`<< /Type /Page /Parent 2 0 R /MediaBox [${mediaBox}] /Contents 4 0 R >>`),
    Buffer.concat([
      Buffer.from(`<< /Length ${stream.length} /Filter /FlateDecode >>\nstream\n`),
      stream,
      Buffer.from('\nendstream'),
    ]),
  ];
  const parts: Buffer[] = [Buffer.from('%PDF-1.4\n')];
  let length = parts[0]!.length;
  const offsets: number[] = [];
  objects.forEach((o, i) => {
    offsets.push(length);
    const chunk = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), o, Buffer.from('\nendobj\n')]);
    parts.push(chunk);
    length += chunk.length;
  });
  const xref =
    `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n` +
    offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('') +
    `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${length}\n%%EOF\n`;
  return Buffer.concat([...parts, Buffer.from(xref)]);
}

describe.skipIf(!available)('PDF previews (pdftoppm, then sharp)', () => {
  it('renders the first page as a WebP thumbnail of at most 256 pixels', async () => {
    const outcome = await renderPdfPreview(pdf('Invoice 42'));
    expect(outcome?.ok).toBe(true);
    const meta = await sharp(outcome?.ok ? outcome.thumbnail : Buffer.alloc(0)).metadata();
    expect(meta.format).toBe('webp');
    expect(Math.max(meta.width, meta.height)).toBeLessThanOrEqual(256);
    // the fixture's page is 200 × 100 points: the thumbnail keeps its shape
    expect(meta.width).toBe(2 * meta.height);
  });

  it('refuses a page larger than the page-size limit without rendering it', async () => {
    const outcome = await renderPdfPreview(pdfWith('0 0 14400 100000', Buffer.from('0 0 10 10 re f')));
    expect(outcome).toEqual({
      ok: false,
      reason: expect.stringMatching(
        /declares 14400 × 100000 points, more than the 14400-point limit/,
      ) as string,
    });
  });

  it('stops a PDF bomb (millions of drawing operations in 100 KB) at the time limit', async () => {
    const bomb = pdfWith('0 0 200 100', Buffer.from('0 0 200 100 re f\n'.repeat(500_000)));
    expect(bomb.length).toBeLessThan(200_000);
    const outcome = await renderPdfPreview(bomb, { timeoutMs: 1000 });
    expect(outcome).toEqual({
      ok: false,
      reason: expect.stringMatching(/took longer than the 1 s limit to render and was stopped/) as string,
    });
  }, 15_000);

  it('says so when the PDF cannot be read', async () => {
    const outcome = await renderPdfPreview(Buffer.from('%PDF-1.4\nthis is not a PDF body\n'));
    expect(outcome).toMatchObject({ ok: false });
    expect(outcome?.ok === false && outcome.reason).toMatch(/could not be read|could not be rendered/);
  });

  it('answers bytes without a single PDF object without starting pdfinfo, as pdfinfo would', async () => {
    // A PDF header and random bytes, as a damaged download or the benchmark's attachments look.
    const fake = Buffer.concat([
      Buffer.from('%PDF-1.7\n'),
      randomBytes(10_240).map((b) => (b === 0x6f ? 0x70 : b)),
    ]);
    expect(hasPdfObject(fake)).toBe(false);
    const outcome = await renderPdfPreview(fake);
    expect(outcome).toEqual({ ok: false, reason: 'The PDF could not be read (it holds no PDF object).' });
    // pdfinfo, asked itself, fails on the same bytes: the shortcut changes no verdict.
    const dir = await mkdtemp(join(tmpdir(), 'postroom-pdfinfo-'));
    try {
      await writeFile(join(dir, 'fake.pdf'), fake);
      const info = await runToolHere('pdfinfo', [join(dir, 'fake.pdf')], { timeoutMs: 10_000 });
      expect(info.code).not.toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('finds the objects of real PDFs, compressed or not', async () => {
    expect(hasPdfObject(pdf('Invoice 42'))).toBe(true);
    expect(hasPdfObject(pdfWith('0 0 200 100', Buffer.from('0 0 10 10 re f')))).toBe(true);
    // separators other than one space, as PDF writers use them
    expect(hasPdfObject(Buffer.from('%PDF-1.5\r\n12\r\n0\tobj<<>>endobj'))).toBe(true);
    expect(hasPdfObject(Buffer.from('%PDF-1.5\nobj 1 0 R endobj 0 obj'))).toBe(false);
  });

  it('takes the PDF as a stream, held in memory when small, else written to its temp file piece by piece', async () => {
    const real = pdf('Invoice 42');
    // pieces of 7 bytes: every `1 0 obj` is cut between two of them
    const pieces = () =>
      Promise.resolve(
        Readable.from(
          Array.from({ length: Math.ceil(real.length / 7) }, (_, i) => real.subarray(i * 7, i * 7 + 7)),
          { objectMode: false },
        ),
      );
    expect((await renderPdfPreview(pieces))?.ok).toBe(true);
    // the same pieces past the in-memory limit go to the temp file, looked through on the way
    expect((await renderPdfPreview(pieces, { memoryBytes: 20 }))?.ok).toBe(true);
    const fake = Buffer.concat([Buffer.from('%PDF-1.7\n'), Buffer.alloc(3 * 1024 * 1024, 0x41)]);
    expect(
      await renderPdfPreview(() => Promise.resolve(Readable.from([fake], { objectMode: false }))),
    ).toEqual({
      ok: false,
      reason: 'The PDF could not be read (it holds no PDF object).',
    });
  });
});
