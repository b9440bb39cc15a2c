import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileTypeFromBuffer } from 'file-type';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as files from '../../test/file-fixtures.js';
import { MIB, fixtureInput } from '../../test/file-fixtures.js';
import { analyzeAttachment } from './analyze.js';
import type { AnalysisLimits, AnalysisResult } from './analyze.js';

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

/** The thumbnail's type and size, read back from its bytes. */
async function thumbnailOf(result: AnalysisResult) {
  expect(result.thumbnail).toBeInstanceOf(Buffer);
  const thumbnail = result.thumbnail ?? Buffer.alloc(0);
  const { width, height } = await sharp(thumbnail).metadata();
  return { type: (await fileTypeFromBuffer(thumbnail))?.mime, width, height, bytes: thumbnail };
}

describe('documents and text', () => {
  it('accepts a PDF as declared', async () => {
    const result = await analyze(files.pdf(), 'invoice.pdf', 'application/pdf');
    expect(result).toMatchObject({
      verdict: 'accepted',
      detectedType: 'application/pdf',
      image: null,
      archive: null,
    });
    expect(result.reason).toBe('PDF document, as declared.');
    expect(result.thumbnail).toBeNull();
  });

  it('accepts CSV text, taking the type from the declaration', async () => {
    const result = await analyze(files.csv(), 'statement.csv', 'text/csv; charset=utf-8');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'text/csv' });
    expect(result.reason).toBe('CSV table, as declared.');
  });

  it('accepts plain text named like a PDF, saying it is not one', async () => {
    const result = await analyze(Buffer.from('Just a note.\n'), 'note.pdf', 'application/pdf');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'text/plain' });
    expect(result.reason).toMatch(
      /^Plain text\. This does not match its declared type \(application\/pdf\) or its name \("note\.pdf"\)/,
    );
  });

  it('does not take text starting with "MZ" for a program (file-type would)', async () => {
    const result = await analyze(Buffer.from('MZ Industries, order 17\n'), 'order.txt', 'text/plain');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'text/plain' });
  });

  it('rejects an empty file', async () => {
    const result = await analyze(files.empty(), 'blank.txt', 'text/plain');
    expect(result).toMatchObject({ verdict: 'rejected', detectedType: null });
    expect(result.reason).toMatch(/empty \(0 bytes\)/);
  });

  it('accepts unrecognised bytes as sent, saying so', async () => {
    const bytes = Buffer.from([0x00, 0x01, 0x02, 0x03, 0xfe, 0x10, 0x00, 0x42]);
    const result = await analyze(bytes, 'data.dat', 'application/x-custom');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: null });
    expect(result.reason).toMatch(/could not be recognised.*no program or script.*application\/x-custom/);
  });
});

describe('size', () => {
  it('rejects a file that was not kept for its size, without reading it', async () => {
    const input = {
      ...fixtureInput(files.pdf(), 'big.pdf', 'application/pdf'),
      size: 30 * MIB,
      stored: false,
    };
    input.open = () => Promise.reject(new Error('must not be read'));
    const result = await analyzeAttachment(input, limits);
    expect(result).toMatchObject({ verdict: 'rejected', detectedType: null });
    expect(result.reason).toBe('It is 30 MiB, larger than the 25 MiB limit, so it was not kept.');
  });

  it('rejects a stream longer than the limit even when its recorded size was small', async () => {
    const input = { ...fixtureInput(Buffer.alloc(5000, 'a'), 'a.txt', 'text/plain'), size: 10 };
    const result = await analyzeAttachment(input, { ...limits, attachmentMaxBytes: 4096 });
    expect(result.verdict).toBe('rejected');
    expect(result.reason).toBe(
      'It is larger than the 4 KiB limit (reading stopped there), so it was not analysed.',
    );
  });
});

describe('programs and scripts', () => {
  it('quarantines a Windows program named and declared as a PDF', async () => {
    const result = await analyze(files.windowsExe(), 'invoice.pdf', 'application/pdf');
    expect(result).toMatchObject({ verdict: 'quarantined', detectedType: 'application/x-msdownload' });
    expect(result.reason).toBe(
      'It is a Windows program, but it is named "invoice.pdf" and declared as application/pdf; programs and scripts disguised as documents or images are quarantined.',
    );
  });

  it('quarantines a Windows program sent as one too: Postroom files documents', async () => {
    const result = await analyze(files.windowsExe(), 'tool.exe', 'application/x-msdownload');
    expect(result).toMatchObject({ verdict: 'quarantined', detectedType: 'application/x-msdownload' });
    expect(result.reason).toMatch(
      /^It is a Windows program \("tool\.exe"\); Postroom files documents and images, not programs/,
    );
  });

  it('quarantines an ELF program sent as an image', async () => {
    const result = await analyze(files.elfExecutable(), 'holiday.jpg', 'image/jpeg');
    expect(result).toMatchObject({ verdict: 'quarantined', detectedType: 'application/x-elf' });
    expect(result.reason).toMatch(/Linux or Unix program.*named "holiday\.jpg" and declared as image\/jpeg/);
  });

  it('quarantines a #! shell script named .pdf', async () => {
    const result = await analyze(files.shellScript(), 'invoice.pdf', 'application/pdf');
    expect(result).toMatchObject({ verdict: 'quarantined', detectedType: 'text/x-shellscript' });
    expect(result.reason).toMatch(
      /a script \(it starts with "#!\/bin\/sh"\), but it is named "invoice\.pdf"/,
    );
  });

  it('quarantines a Windows installer posing as an old Word file (both are compound files)', async () => {
    const result = await analyze(files.msiInstaller(), 'contract.doc', 'application/msword');
    expect(result).toMatchObject({ verdict: 'quarantined', detectedType: 'application/x-msi' });
    expect(result.reason).toMatch(/Windows installer \(MSI\), but it is named "contract\.doc"/);
  });

  it('quarantines a file whose name runs a program, whatever it holds', async () => {
    const result = await analyze(Buffer.from('WScript.Echo "hi"\n'), 'readme.vbs', 'text/plain');
    expect(result).toMatchObject({ verdict: 'quarantined', detectedType: 'text/plain' });
    expect(result.reason).toMatch(/ends in \.vbs, a kind of file that runs programs or scripts/);
  });

  it('quarantines an SVG image carrying a script', async () => {
    const result = await analyze(files.svgWithScript(), 'logo.svg', 'image/svg+xml');
    expect(result).toMatchObject({ verdict: 'quarantined', detectedType: 'image/svg+xml' });
    expect(result.reason).toMatch(/SVG image \("logo\.svg"\) that carries a script/);
  });
});

describe('images', () => {
  it('accepts a PNG with its facts and a 256 px WebP thumbnail', async () => {
    const result = await analyze(await files.png(640, 480), 'scan.png', 'image/png');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'image/png' });
    expect(result.image).toEqual({ width: 640, height: 480, format: 'png', orientation: null });
    expect(result.reason).toBe('PNG image, 640 × 480 pixels, as declared.');
    expect(await thumbnailOf(result)).toMatchObject({ type: 'image/webp', width: 256, height: 192 });
  });

  it('records EXIF orientation 6 and applies it to the facts and the thumbnail', async () => {
    // stored 320 x 160, left half red; orientation 6 shows it turned a quarter clockwise: 160 x 320, red on top
    const result = await analyze(await files.jpegWithOrientation(320, 160, 6), 'phone.jpg', 'image/jpeg');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'image/jpeg' });
    expect(result.image).toEqual({ width: 160, height: 320, format: 'jpeg', orientation: 6 });
    const thumbnail = await thumbnailOf(result);
    expect(thumbnail).toMatchObject({ type: 'image/webp', width: 128, height: 256 });
    const { data, info } = await sharp(thumbnail.bytes)
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const pixel = (x: number, y: number) => [
      ...data.subarray((y * info.width + x) * 3, (y * info.width + x) * 3 + 3),
    ];
    expect(pixel(64, 20)[0]).toBeGreaterThan(200); // red on top
    expect(pixel(64, 236)[2]).toBeGreaterThan(200); // blue at the bottom
  });

  it('accepts a GIF; a thumbnail is never enlarged past the image', async () => {
    const result = await analyze(await files.gif(32, 32), 'icon.gif', 'image/gif');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'image/gif' });
    expect(result.image).toEqual({ width: 32, height: 32, format: 'gif', orientation: null });
    expect(await thumbnailOf(result)).toMatchObject({ type: 'image/webp', width: 32, height: 32 });
  });

  it('accepts a WebP', async () => {
    const result = await analyze(await files.webp(300, 200), 'photo.webp', 'image/webp');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'image/webp' });
    expect(result.image).toEqual({ width: 300, height: 200, format: 'webp', orientation: null });
    expect(await thumbnailOf(result)).toMatchObject({ type: 'image/webp', width: 256, height: 171 });
  });

  it('accepts an application/octet-stream that is really a PNG, with its detected type', async () => {
    const result = await analyze(await files.png(64, 48), 'attachment.bin', 'application/octet-stream');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'image/png' });
    expect(result.image).toMatchObject({ width: 64, height: 48, format: 'png' });
    expect(result.reason).toBe(
      'PNG image, 64 × 48 pixels. It was sent as application/octet-stream, which says nothing about the contents, so its type was taken from the bytes (image/png).',
    );
  });

  it('accepts a PNG declared and named as a JPEG, saying so', async () => {
    const result = await analyze(await files.png(64, 48), 'photo.jpg', 'image/jpeg');
    expect(result).toMatchObject({ verdict: 'accepted', detectedType: 'image/png' });
    expect(result.reason).toMatch(
      /does not match its declared type \(image\/jpeg\) or its name \("photo\.jpg"\), so it is recorded as image\/png/,
    );
  });

  it('rejects a truncated JPEG as damaged', async () => {
    const result = await analyze(await files.truncatedJpeg(), 'cut.jpg', 'image/jpeg');
    expect(result).toMatchObject({ verdict: 'rejected', detectedType: 'image/jpeg', thumbnail: null });
    expect(result.image).toEqual({ width: 400, height: 300, format: 'jpeg', orientation: null });
    expect(result.reason).toMatch(
      /^The JPEG image is damaged or incomplete, so it cannot be shown \(premature end/,
    );
  });

  it('refuses a PNG declaring 10^10 pixels from its header, fast and without decoding', async () => {
    const bytes = files.pngDeclaring(100_000, 100_000);
    const rss = process.memoryUsage().rss;
    const started = performance.now();
    const result = await analyze(bytes, 'huge.png', 'image/png');
    const ms = performance.now() - started;
    const grew = (process.memoryUsage().rss - rss) / MIB;
    console.log(
      `10^10-pixel PNG (${bytes.length} bytes): ${ms.toFixed(1)} ms, RSS grew ${grew.toFixed(1)} MiB`,
    );
    expect(result).toMatchObject({ verdict: 'rejected', detectedType: 'image/png', thumbnail: null });
    expect(result.image).toEqual({ width: 100_000, height: 100_000, format: 'png', orientation: null });
    expect(result.reason).toBe(
      'The image declares 100000 × 100000 pixels (10000 megapixels), more than the limit of 100 megapixels, so it was refused without being decoded.',
    );
  });
});
