/**
 * A preview of a PDF's first page: `pdftoppm` (poppler-utils) renders it to PNG at most `size` pixels
 * on its longer side, then sharp makes the same WebP thumbnail images get. Bounded three ways, so a
 * PDF bomb gets a clear outcome instead of a stuck consumer: the page's declared size is read first
 * (`pdfinfo`) and a page over {@link MAX_PAGE_POINTS} is refused unrendered; the rendering runs under a
 * time limit that kills its process group; and `-scale-to` caps the pixels written whatever the page
 * says. Without poppler-utils on the PATH there is no preview (PDFs simply have no thumbnail).
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { findOnPath } from '../config.js';
import { runTool } from './run-tool.js';

/** Longest page side accepted, in points (1/72 in): 14,400 pt (200 in) is the most the PDF format allows without UserUnit. */
export const MAX_PAGE_POINTS = 14_400;
/** Longest side of the thumbnail, pixels (as for images). */
export const PREVIEW_SIZE = 256;

/** What making a preview ended with. */
export type PreviewOutcome =
  | { ok: true; thumbnail: Buffer }
  | { ok: false; reason: string }
  /** poppler-utils is not installed: no preview, and nothing wrong with the PDF. */
  | null;

/** Options of {@link renderPdfPreview}. */
export interface PreviewOptions {
  /** Milliseconds for `pdfinfo` and `pdftoppm` together. Default 20 s. */
  timeoutMs?: number;
  /** Longest side of the thumbnail; default {@link PREVIEW_SIZE}. */
  size?: number;
  /** Longest page side accepted, points; default {@link MAX_PAGE_POINTS}. */
  maxPagePoints?: number;
  /** Folder for the temp files; default the OS temp folder. */
  tempDir?: string;
  /** A streamed PDF up to this many bytes is read into memory before any temp file; default 1 MiB. */
  memoryBytes?: number;
}

/** The last PATH looked through and what it held: every preview asks, and a look costs a stat per folder. */
let availability: { path: string | undefined; found: boolean } | null = null;

/** True when poppler-utils (`pdftoppm`, `pdfinfo`) is on the PATH (remembered until PATH changes). */
export function pdfPreviewAvailable(): boolean {
  const path = process.env['PATH'];
  if (availability && availability.path === path) return availability.found;
  const found = findOnPath('pdftoppm', path) !== null && findOnPath('pdfinfo', path) !== null;
  availability = { path, found };
  return found;
}

/**
 * True when `pdf` holds at least one indirect object (`<number> <number> obj`). Every readable PDF
 * does: its catalog is one, and so is an object stream that holds the others. Bytes without one (a
 * damaged or fake PDF) can only fail in pdfinfo, so they are told so without starting it: starting a
 * program costs more CPU than the rest of an attachment's analysis.
 */
export function hasPdfObject(pdf: Buffer): boolean {
  const isDigit = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x39;
  const isSpace = (b: number | undefined) =>
    b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09 || b === 0x0c || b === 0x00;
  for (let at = pdf.indexOf('obj'); at !== -1; at = pdf.indexOf('obj', at + 3)) {
    // Backwards over: white space, digits (generation), white space, digits (object number).
    let i = at - 1;
    if (!isSpace(pdf[i])) continue;
    while (isSpace(pdf[i])) i--;
    if (!isDigit(pdf[i])) continue;
    while (isDigit(pdf[i])) i--;
    if (!isSpace(pdf[i])) continue;
    while (isSpace(pdf[i])) i--;
    if (isDigit(pdf[i])) return true;
  }
  return false;
}

/** The PDF: its bytes, or a way to open them as a stream (written to the temp file without ever being held whole). */
export type PdfSource = Buffer | (() => Promise<Readable>);

const NO_OBJECT: PreviewOutcome = {
  ok: false,
  reason: 'The PDF could not be read (it holds no PDF object).',
};

/**
 * Copies a stream to `path`, looking for a PDF object on the way ({@link hasPdfObject}, over each chunk
 * with the end of the one before, so a match across two chunks is found). Resolves with whether one was.
 */
async function copyLookingForObject(source: Readable, path: string): Promise<boolean> {
  let found = false;
  let tail = Buffer.alloc(0);
  const look = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (!found) {
        found = hasPdfObject(tail.length > 0 ? Buffer.concat([tail, chunk]) : chunk);
        tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - 1024)));
      }
      done(null, chunk);
    },
  });
  await pipeline(source, look, createWriteStream(path));
  return found;
}

/** A streamed PDF up to this size is read into memory first: one without an object needs no temp file. */
const MEMORY_BYTES = 1024 * 1024;

/**
 * Reads a stream's first bytes, up to just past `limit`: the whole file as a Buffer when it ends by
 * then, else a stream of the same bytes (those read, then the rest) to copy to disk. The caller
 * destroys `source` when done with it.
 */
async function readSmall(source: Readable, limit: number): Promise<Buffer | Readable> {
  const pieces = source[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  const head: Buffer[] = [];
  let size = 0;
  while (size <= limit) {
    const next = await pieces.next();
    if (next.done) return Buffer.concat(head, size);
    const piece = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
    head.push(piece);
    size += piece.length;
  }
  return Readable.from(
    (async function* () {
      yield* head;
      for (let next = await pieces.next(); !next.done; next = await pieces.next()) yield next.value;
    })(),
  );
}

/** Renders the first page of `pdf` to a WebP thumbnail; see the module comment for the bounds. */
export async function renderPdfPreview(
  source: PdfSource,
  options: PreviewOptions = {},
): Promise<PreviewOutcome> {
  if (!pdfPreviewAvailable()) return null;
  const opened = Buffer.isBuffer(source) ? null : await source();
  try {
    return await render(
      opened ? await readSmall(opened, options.memoryBytes ?? MEMORY_BYTES) : (source as Buffer),
      options,
    );
  } finally {
    opened?.destroy(); // read to its end, or left unread by an early outcome: closed either way
  }
}

/** {@link renderPdfPreview} once the PDF is a Buffer, or a stream too large to hold. */
async function render(pdf: Buffer | Readable, options: PreviewOptions): Promise<PreviewOutcome> {
  if (Buffer.isBuffer(pdf) && !hasPdfObject(pdf)) return NO_OBJECT;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const size = options.size ?? PREVIEW_SIZE;
  const maxPoints = options.maxPagePoints ?? MAX_PAGE_POINTS;
  const deadline = Date.now() + timeoutMs;
  const dir = await mkdtemp(join(options.tempDir ?? tmpdir(), 'postroom-preview-'));
  try {
    const input = join(dir, 'input.pdf');
    if (Buffer.isBuffer(pdf)) await writeFile(input, pdf);
    else if (!(await copyLookingForObject(pdf, input))) return NO_OBJECT;
    const info = await runTool('pdfinfo', ['-f', '1', '-l', '1', input], { timeoutMs, env: quietEnv() });
    if (info.timedOut) return { ok: false, reason: tookTooLong(timeoutMs) };
    if (info.code !== 0)
      return { ok: false, reason: `The PDF could not be read (${firstLine(info.output)}).` };
    const page = pageSize(info.output);
    if (page && Math.max(page.width, page.height) > maxPoints) {
      return {
        ok: false,
        reason: `The first page declares ${Math.round(page.width)} × ${Math.round(page.height)} points, more than the ${maxPoints}-point limit, so it was not rendered.`,
      };
    }
    const left = Math.max(1, deadline - Date.now());
    const out = join(dir, 'page');
    const args = ['-f', '1', '-l', '1', '-singlefile', '-scale-to', String(size), '-png', input, out];
    const run = await runTool('pdftoppm', args, { timeoutMs: left, env: quietEnv() });
    if (run.timedOut) return { ok: false, reason: tookTooLong(timeoutMs) };
    if (run.code !== 0)
      return { ok: false, reason: `The first page could not be rendered (${firstLine(run.output)}).` };
    const png = await readFile(`${out}.png`);
    const thumbnail = await sharp(png, { limitInputPixels: size * size * 4 })
      .resize({ width: size, height: size, fit: 'inside', withoutEnlargement: true })
      .webp({ quality: 80 })
      .toBuffer();
    return { ok: true, thumbnail };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Page 1's size from pdfinfo's `Page    1 size: 612 x 792 pts (letter)`, with its rotation ignored. */
function pageSize(text: string): { width: number; height: number } | null {
  const m =
    /Page\s+1 size:\s*([\d.]+) x ([\d.]+) pts/.exec(text) ??
    /Page size:\s*([\d.]+) x ([\d.]+) pts/.exec(text);
  return m ? { width: Number(m[1]), height: Number(m[2]) } : null;
}

function tookTooLong(timeoutMs: number): string {
  return `The first page took longer than the ${Math.round(timeoutMs / 100) / 10} s limit to render and was stopped (the PDF may be a bomb or unusually complex).`;
}

function firstLine(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? 'no detail';
  return line.trim().slice(0, 200);
}

/** poppler reads no user configuration; a fixed locale keeps its messages in English for reasons. */
function quietEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env['PATH'], LANG: 'C', LC_ALL: 'C' };
}
