/**
 * The true type of a file, from its bytes: file-type's magic numbers, sharpened where file-type is blunt
 * (any file starting `MZ` is an "exe" to it; MSI installers and old Word files are both "cfb"; it does not
 * know `#!` scripts), plus a plain-text sniff for what has no magic number (CSV, text, SVG).
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { fileTypeFromBuffer, fileTypeFromFile } from 'file-type';

/** Bytes read from the start of a file for sniffing (text, `#!`, PE header). */
export const SAMPLE_BYTES = 64 * 1024;

/** What the bytes are. */
export interface Detection {
  /** MIME type found in the bytes; `text/plain` for text without a magic number; null when unknown. */
  mime: string | null;
  /** The matching extension, without the dot (file-type's); null when unknown. */
  ext: string | null;
  /** When the bytes are a program or script, what kind, for people ("a Windows program"); else null. */
  program: string | null;
  /** True when the bytes look like text (no magic number, no NUL bytes, few control characters). */
  text: boolean;
}

/** Kinds file-type recognises that run code, by file-type's extension (RULES.md, rule 3). */
const PROGRAM_KINDS: Readonly<Record<string, string>> = {
  elf: 'a Linux or Unix program (ELF)',
  macho: 'a macOS program (Mach-O)',
  class: 'a Java program (class file)',
  jar: 'a Java program (JAR)',
  apk: 'an Android app (APK)',
  xpi: 'a Firefox extension',
  crx: 'a Chrome extension',
  lnk: 'a Windows shortcut, which can start programs',
  chm: 'a compiled Windows help file, which can run scripts',
  deb: 'a Linux software package',
  rpm: 'a Linux software package',
  wasm: 'a WebAssembly program',
  swf: 'a Flash program',
};

/** Class ids of the root storage of Windows Installer files: installer, patch, transform. */
const INSTALLER_CLASS_IDS: ReadonlySet<string> = new Set([
  '84100c0000000000c000000000000046', // .msi {000C1084-0000-0000-C000-000000000046}
  '86100c0000000000c000000000000046', // .msp
  '82100c0000000000c000000000000046', // .mst
]);

/** Script interpreters named on a `#!` line, and the type recorded for them. */
const SCRIPT_TYPES: Readonly<Record<string, string>> = {
  sh: 'text/x-shellscript',
  bash: 'text/x-shellscript',
  dash: 'text/x-shellscript',
  zsh: 'text/x-shellscript',
  ksh: 'text/x-shellscript',
  python: 'text/x-python',
  perl: 'text/x-perl',
  ruby: 'text/x-ruby',
  node: 'text/javascript',
  php: 'application/x-httpd-php',
};

/**
 * Detects the type of the file (at path `file`, or its bytes) whose first bytes are `sample` (at most
 * {@link SAMPLE_BYTES}). Never throws on odd contents: what cannot be recognised is `mime: null`.
 */
export async function detectType(file: string | Buffer, sample: Buffer): Promise<Detection> {
  const found = await (typeof file === 'string' ? fileTypeFromFile(file) : fileTypeFromBuffer(file)).catch(
    () => fileTypeFromBuffer(sample).catch(() => undefined),
  );
  const text = looksLikeText(sample);

  if (sample.subarray(0, 2).toString('latin1') === '#!') {
    const line = sample.subarray(0, 200).toString('utf8').split(/\r?\n/)[0] ?? '#!';
    return { mime: scriptType(line), ext: null, program: `a script (it starts with "${line}")`, text };
  }
  if (found?.ext === 'exe') {
    // file-type calls anything starting with "MZ" an exe; a text that happens to start so is not one
    if (isPortableExecutable(sample)) return { ...found, program: 'a Windows program', text: false };
    if (!text) return { ...found, program: 'a DOS or Windows program', text: false };
    return { mime: 'text/plain', ext: 'txt', program: null, text };
  }
  if (found?.ext === 'cfb' && INSTALLER_CLASS_IDS.has(await compoundFileClassId(file, sample))) {
    return { mime: 'application/x-msi', ext: 'msi', program: 'a Windows installer (MSI)', text: false };
  }
  if (found) {
    const program = PROGRAM_KINDS[found.ext] ?? null;
    return { mime: found.mime, ext: found.ext, program, text: found.mime === 'application/xml' && text };
  }
  return text
    ? { mime: 'text/plain', ext: 'txt', program: null, text }
    : { mime: null, ext: null, program: null, text };
}

/** True when the `MZ` header's `e_lfanew` points at a `PE\0\0` signature (a Windows program or DLL). */
function isPortableExecutable(sample: Buffer): boolean {
  if (sample.length < 0x40) return false;
  const at = sample.readUInt32LE(0x3c);
  return at + 4 <= sample.length && sample.readUInt32BE(at) === 0x50450000;
}

/**
 * The class id (hex, as stored) of a compound file's root storage: the first directory entry, whose
 * sector the header names. It tells an installer from an old Word or Excel file; '' when unreadable.
 */
async function compoundFileClassId(file: string | Buffer, sample: Buffer): Promise<string> {
  if (sample.length < 0x34) return '';
  const sectorShift = sample.readUInt16LE(0x1e);
  if (sectorShift !== 9 && sectorShift !== 12) return '';
  const at = (sample.readUInt32LE(0x30) + 1) * 2 ** sectorShift + 0x50;
  if (at + 16 <= sample.length) return sample.subarray(at, at + 16).toString('hex');
  if (typeof file !== 'string')
    return at + 16 <= file.length ? file.subarray(at, at + 16).toString('hex') : '';
  const handle = await open(file, 'r');
  try {
    const id = Buffer.alloc(16);
    const { bytesRead } = await handle.read(id, 0, 16, at);
    return bytesRead === 16 ? id.toString('hex') : '';
  } finally {
    await handle.close();
  }
}

/** The type of a `#!` script from its interpreter (`#!/usr/bin/env python3` → `text/x-python`). */
function scriptType(line: string): string {
  const words = line.slice(2).trim().split(/\s+/);
  const command = (words[0]?.endsWith('/env') ? words[1] : words[0]) ?? '';
  const name = (command.split('/').pop() ?? '').replace(/[\d.]+$/, '');
  return SCRIPT_TYPES[name] ?? 'text/plain';
}

/**
 * True when bytes look like text: a UTF-16 byte-order mark, or no NUL bytes and under 1% control
 * characters other than tab, line breaks, form feed and escape. Any 8-bit encoding passes.
 */
function looksLikeText(sample: Buffer): boolean {
  if (sample.length === 0) return false;
  if ((sample[0] === 0xff && sample[1] === 0xfe) || (sample[0] === 0xfe && sample[1] === 0xff)) return true;
  let control = 0;
  for (const byte of sample) {
    if (byte === 0) return false;
    if ((byte < 0x20 && ![9, 10, 12, 13, 27].includes(byte)) || byte === 0x7f) control++;
  }
  return control <= sample.length / 100;
}

/** Markup that runs script in an SVG: a script element, a `javascript:` link, an `on...=` event handler. */
const SVG_SCRIPT = /<script[\s>/]|javascript:|\son[a-z]+\s*=/i;

/**
 * True when the file (a path, or its bytes) is SVG markup (`<svg` in its first bytes) that carries script anywhere in it
 * (RULES.md, rule 7). Reads the file in 1 MiB chunks, overlapping so a match cannot hide on a seam.
 */
export async function svgHasScript(file: string | Buffer, sample: Buffer): Promise<boolean> {
  if (!/<svg[\s>]/i.test(sample.toString('latin1'))) return false;
  if (typeof file !== 'string') return SVG_SCRIPT.test(file.toString('latin1'));
  let carry = '';
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    const text = carry + (chunk as Buffer).toString('latin1');
    if (SVG_SCRIPT.test(text)) return true;
    carry = text.slice(-64);
  }
  return false;
}
