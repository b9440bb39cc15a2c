/**
 * What the analysis knows about kinds of files: names for people, which extensions and types are
 * documents or images, which names run programs, and which declared types say nothing. Pure tables and
 * lookups, shared by the type detection, the archive listing and the wording of reasons (RULES.md).
 */

/** Extensions (lower case, no dot) of files that run programs or scripts when opened (RULES.md, rule 4). */
export const PROGRAM_EXTENSIONS: ReadonlySet<string> = new Set([
  // Windows programs, libraries, installers, shortcuts and control-panel items
  ...['exe', 'dll', 'scr', 'com', 'pif', 'cpl', 'msi', 'msp', 'mst', 'msc', 'lnk', 'sys', 'drv', 'ocx'],
  // Windows scripts and script hosts
  ...['bat', 'cmd', 'js', 'jse', 'vbs', 'vbe', 'wsf', 'wsh', 'wsc', 'hta', 'ps1', 'psm1', 'psd1', 'reg'],
  // Java, Android, browser extensions, other platforms
  ...['jar', 'class', 'apk', 'xpi', 'crx', 'sh', 'bash', 'command', 'app', 'run', 'elf', 'deb', 'rpm'],
  // compiled help and Office add-ins run code too
  ...['chm', 'appref-ms', 'application', 'xll', 'wasm'],
]);

/** The expected MIME type of common document and image extensions (RULES.md, rule 8). */
const EXTENSION_TYPES: Readonly<Record<string, string>> = {
  pdf: 'application/pdf',
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  jpe: 'image/jpeg',
  jfif: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  tif: 'image/tiff',
  tiff: 'image/tiff',
  bmp: 'image/bmp',
  heic: 'image/heic',
  avif: 'image/avif',
  svg: 'image/svg+xml',
  ico: 'image/x-icon',
  doc: 'application/msword',
  dot: 'application/msword',
  xls: 'application/vnd.ms-excel',
  ppt: 'application/vnd.ms-powerpoint',
  msg: 'application/vnd.ms-outlook',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  xlsx: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  pptx: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  odt: 'application/vnd.oasis.opendocument.text',
  ods: 'application/vnd.oasis.opendocument.spreadsheet',
  odp: 'application/vnd.oasis.opendocument.presentation',
  epub: 'application/epub+zip',
  rtf: 'application/rtf',
  txt: 'text/plain',
  text: 'text/plain',
  log: 'text/plain',
  md: 'text/markdown',
  csv: 'text/csv',
  tsv: 'text/tab-separated-values',
  html: 'text/html',
  htm: 'text/html',
  json: 'application/json',
  xml: 'application/xml',
  ics: 'text/calendar',
  vcf: 'text/vcard',
  eml: 'message/rfc822',
  zip: 'application/zip',
};

/** Types that file-type reports differently from what mail clients declare: declared → canonical. */
const TYPE_ALIASES: Readonly<Record<string, string>> = {
  'image/jpg': 'image/jpeg',
  'image/pjpeg': 'image/jpeg',
  'image/x-png': 'image/png',
  'image/x-ms-bmp': 'image/bmp',
  'image/vnd.microsoft.icon': 'image/x-icon',
  'application/x-pdf': 'application/pdf',
  'application/x-zip-compressed': 'application/zip',
  'application/x-zip': 'application/zip',
  'text/xml': 'application/xml',
  'application/csv': 'text/csv',
  'text/comma-separated-values': 'text/csv',
};

/** Declared types that say nothing about the contents (RULES.md, rule 8). */
const GENERIC_TYPES: ReadonlySet<string> = new Set([
  '',
  'application/octet-stream',
  'binary/octet-stream',
  'application/binary',
  'application/unknown',
  'application/x-download',
  'application/download',
  'application/force-download',
]);

/** Zip-based formats: a zip archive under one of these names or types is what was promised. */
const ZIP_BASED: ReadonlySet<string> = new Set([
  'application/zip',
  'application/epub+zip',
  ...Object.values(EXTENSION_TYPES).filter((t) => t.includes('openxmlformats') || t.includes('opendocument')),
]);

/** Old Office formats are compound files (CFB), which file-type reports as `application/x-cfb`. */
const COMPOUND_FILE_BASED: ReadonlySet<string> = new Set([
  'application/x-cfb',
  'application/msword',
  'application/vnd.ms-excel',
  'application/vnd.ms-powerpoint',
  'application/vnd.ms-outlook',
]);

/** Names for people, by MIME type. */
const LABELS: Readonly<Record<string, string>> = {
  'application/pdf': 'PDF document',
  'image/png': 'PNG image',
  'image/jpeg': 'JPEG image',
  'image/gif': 'GIF image',
  'image/webp': 'WebP image',
  'image/tiff': 'TIFF image',
  'image/bmp': 'BMP image',
  'image/avif': 'AVIF image',
  'image/heic': 'HEIC image',
  'image/svg+xml': 'SVG image',
  'application/zip': 'zip archive',
  'application/x-cfb': 'Microsoft Office document in the old format (or another compound file)',
  'application/msword': 'Word document',
  'application/vnd.ms-excel': 'Excel workbook',
  'application/vnd.ms-powerpoint': 'PowerPoint presentation',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'Word document',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'Excel workbook',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'PowerPoint presentation',
  'application/vnd.oasis.opendocument.text': 'OpenDocument text',
  'application/vnd.oasis.opendocument.spreadsheet': 'OpenDocument spreadsheet',
  'application/vnd.oasis.opendocument.presentation': 'OpenDocument presentation',
  'application/epub+zip': 'EPUB e-book',
  'text/plain': 'plain text',
  'text/csv': 'CSV table',
  'text/html': 'HTML page',
  'text/markdown': 'Markdown text',
  'application/json': 'JSON data',
  'application/xml': 'XML document',
  'message/rfc822': 'email message',
};

/** The lower-case extension of a file name, without the dot; empty when there is none. */
export function extensionOf(filename: string): string {
  const base = filename.slice(filename.replace(/\\/g, '/').lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
}

/** A declared type made comparable: lower case, no parameters (`; charset=...`), aliases resolved. */
export function normalizeType(declaredType: string): string {
  const bare = (declaredType.split(';')[0] ?? '').trim().toLowerCase();
  return TYPE_ALIASES[bare] ?? bare;
}

/** True when a declared type says nothing about the contents (`application/octet-stream` and kin). */
export function isGenericType(declaredType: string): boolean {
  return GENERIC_TYPES.has(normalizeType(declaredType));
}

/** The MIME type a file's extension promises, or null for an extension we do not judge. */
export function typeOfExtension(filename: string): string | null {
  return EXTENSION_TYPES[extensionOf(filename)] ?? null;
}

/** True for a type that is a document or an image (what Postroom is for, and what a program may pose as). */
export function isDocumentOrImageType(type: string): boolean {
  const t = normalizeType(type);
  return t.startsWith('image/') || t.startsWith('text/') || Object.values(EXTENSION_TYPES).includes(t);
}

/** True when text is what a type promises (so text contents match it). */
export function isTextType(type: string): boolean {
  const t = normalizeType(type);
  return (
    t.startsWith('text/') ||
    ['application/json', 'application/xml', 'image/svg+xml', 'message/rfc822'].includes(t) ||
    t.endsWith('+xml') ||
    t.endsWith('+json')
  );
}

/** True when bytes of type `detected` keep the promise of `claimed` (the same type or the same family). */
export function typesAgree(detected: string, claimed: string): boolean {
  const d = normalizeType(detected);
  const c = normalizeType(claimed);
  if (d === c) return true;
  if (d === 'application/zip' && ZIP_BASED.has(c)) return true;
  if (d === 'application/x-cfb' && COMPOUND_FILE_BASED.has(c)) return true;
  return isTextType(d) && isTextType(c);
}

/** A name for people: "PDF document", "PNG image"; otherwise built from the extension or the type. */
export function labelOf(type: string, ext?: string): string {
  const t = normalizeType(type);
  const known = LABELS[t];
  if (known) return known;
  if (t.startsWith('image/')) return `${(ext ?? t.slice(6)).toUpperCase()} image`;
  return ext ? `${ext.toUpperCase()} file (${t})` : `file of type ${t}`;
}

/** Bytes for people: "25 MiB", "31.3 MiB", "512 bytes". */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit === 0 ? String(value) : value.toFixed(1).replace(/\.0$/, '');
  return `${shown} ${units[unit]}`;
}

/** A name shortened for a reason text (reasons are capped at 2000 characters by the contract). */
export function shortName(name: string, max = 80): string {
  return name.length <= max ? name : `${name.slice(0, max - 1)}…`;
}
