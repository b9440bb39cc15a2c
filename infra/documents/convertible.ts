/**
 * Which accepted attachments are converted to PDF: office documents (Word, Excel, PowerPoint,
 * OpenDocument, RTF), by the type found in their bytes. The analysis (which marks a conversion
 * pending) and the convert role (which does it) must agree, so both ask here.
 */

/** Detected types converted to PDF, and the extension a converter is handed the bytes under. */
const OFFICE_TYPES: Readonly<Record<string, string>> = {
  'application/msword': 'doc',
  'application/vnd.ms-excel': 'xls',
  'application/vnd.ms-powerpoint': 'ppt',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'pptx',
  'application/vnd.oasis.opendocument.text': 'odt',
  'application/vnd.oasis.opendocument.spreadsheet': 'ods',
  'application/vnd.oasis.opendocument.presentation': 'odp',
  'application/rtf': 'rtf',
};

/** Old Office files are compound files; the detected type alone cannot say which: the name decides. */
const COMPOUND_EXTENSIONS: Readonly<Record<string, string>> = { doc: 'doc', xls: 'xls', ppt: 'ppt' };

/**
 * The extension to hand a converter the bytes under, when an accepted attachment of this detected type
 * and name is an office document to convert; null otherwise (PDFs, images, text, archives...).
 */
export function officeExtension(detectedType: string | null, filename: string): string | null {
  if (detectedType === null) return null;
  const known = OFFICE_TYPES[detectedType];
  if (known) return known;
  if (detectedType === 'application/x-cfb') {
    const dot = filename.lastIndexOf('.');
    return COMPOUND_EXTENSIONS[dot > 0 ? filename.slice(dot + 1).toLowerCase() : ''] ?? null;
  }
  return null;
}

/** The name a converted PDF is filed under: the original's base name with `.pdf`. */
export function pdfFilename(filename: string): string {
  const dot = filename.lastIndexOf('.');
  const base = dot > 0 ? filename.slice(0, dot) : filename;
  // The safe name is at most 255 bytes; `.pdf` must still fit after the base.
  let out = base;
  while (Buffer.byteLength(`${out}.pdf`) > 255) out = out.slice(0, -1);
  return `${out || 'document'}.pdf`;
}
