import { describe, expect, it } from 'vitest';
import { MAX_FILENAME_BYTES, safeFilename } from './safe-filename.js';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const safe = (name: string) => safeFilename(name, 'attachment-1.bin');

describe('safeFilename', () => {
  it('keeps ordinary names, Unicode included', () => {
    expect(safe('Invoice 2026-11.pdf')).toBe('Invoice 2026-11.pdf');
    expect(safe('Überweisung März.xlsx')).toBe('Überweisung März.xlsx');
    expect(safe('报告.docx')).toBe('报告.docx');
    expect(safe('archive.tar.gz')).toBe('archive.tar.gz');
  });

  it('removes path separators and drops . and .. segments', () => {
    expect(safe('../../etc/passwd')).toBe('etc_passwd');
    expect(safe('..\\..\\Windows\\System32\\evil.dll')).toBe('Windows_System32_evil.dll');
    expect(safe('/abs/path/report.pdf')).toBe('abs_path_report.pdf');
    expect(safe('C:\\Users\\bob\\photo.jpg')).toBe('C__Users_bob_photo.jpg');
    expect(safe('../')).toBe('attachment-1.bin');
  });

  it('removes control characters and invisible bidi overrides', () => {
    expect(safe('bad\u0000name\r\n.txt')).toBe('badname.txt');
    expect(safe('tab\there.txt')).toBe('tabhere.txt');
    expect(safe('del\u007fand\u0085c1.txt')).toBe('delandc1.txt');
    // U+202E would display "invoice\u202Efdp.exe" as "invoiceexe.pdf"
    expect(safe('invoice\u202efdp.exe')).toBe('invoicefdp.exe');
    expect(safe('\ufeffbom.txt')).toBe('bom.txt');
  });

  it('replaces characters Windows refuses', () => {
    expect(safe('what? "really" <yes>|no*.txt')).toBe('what_ _really_ _yes__no_.txt');
    expect(safe('12:30 meeting.ics')).toBe('12_30 meeting.ics');
  });

  it('strips leading dots and spaces and trailing dots and spaces', () => {
    expect(safe('.htaccess')).toBe('htaccess');
    expect(safe('...hidden.txt')).toBe('hidden.txt');
    expect(safe('  spaced.txt  ')).toBe('spaced.txt');
    expect(safe('trailing.txt. . ')).toBe('trailing.txt');
    expect(safe('a    b.txt')).toBe('a b.txt');
  });

  it('avoids Windows reserved device names, with or without an extension', () => {
    expect(safe('CON')).toBe('_CON');
    expect(safe('nul.txt')).toBe('_nul.txt');
    expect(safe('com1.tar.gz')).toBe('_com1.tar.gz');
    expect(safe('Lpt9 .log')).toBe('_Lpt9 .log');
    expect(safe('console.txt')).toBe('console.txt');
    expect(safe('com10.txt')).toBe('com10.txt');
  });

  it('cuts long names to 255 UTF-8 bytes keeping the extension', () => {
    const long = `${'a'.repeat(300)}.pdf`;
    const out = safe(long);
    expect(bytes(out)).toBe(MAX_FILENAME_BYTES);
    expect(out.endsWith('.pdf')).toBe(true);
    expect(out).toBe(`${'a'.repeat(251)}.pdf`);
  });

  it('never splits a multibyte character when cutting', () => {
    // "é" is 2 bytes, "€" 3, "😀" 4 (a surrogate pair in JS)
    for (const ch of ['é', '€', '😀', '👩‍👩‍👧']) {
      const out = safe(`${ch.repeat(200)}.txt`);
      expect(bytes(out)).toBeLessThanOrEqual(MAX_FILENAME_BYTES);
      expect(out.endsWith('.txt')).toBe(true);
      const stem = out.slice(0, -4);
      expect(stem.length % ch.length).toBe(0);
      expect(stem).toBe(ch.repeat(stem.length / ch.length));
      expect(Buffer.from(out, 'utf8').toString('utf8')).toBe(out);
      expect(out).not.toContain('\ufffd');
    }
    // a combining accent stays with its letter
    const decomposed = `${'e\u0301'.repeat(200)}.txt`;
    const cut = safe(decomposed);
    expect(bytes(cut)).toBeLessThanOrEqual(MAX_FILENAME_BYTES);
    expect(cut.normalize('NFD').endsWith('e\u0301.txt')).toBe(true);
  });

  it('cuts a name whose extension is too long to keep from the end', () => {
    const out = safe(`x.${'y'.repeat(400)}`);
    expect(bytes(out)).toBe(MAX_FILENAME_BYTES);
    expect(out.startsWith('x.yyy')).toBe(true);
  });

  it('normalises to NFC so the same name is the same bytes', () => {
    expect(safe('Cafe\u0301.txt')).toBe('Café.txt');
    expect(bytes(safe('Cafe\u0301.txt'))).toBe(bytes('Café.txt'));
  });

  it('replaces lone surrogates instead of producing invalid UTF-8', () => {
    expect(safe('bad\ud800.txt')).toBe('bad\ufffd.txt');
  });

  it('is never empty: falls back, and falls back safely', () => {
    expect(safe('')).toBe('attachment-1.bin');
    expect(safe('   ')).toBe('attachment-1.bin');
    expect(safe('....')).toBe('attachment-1.bin');
    expect(safe('\u0000\u0001')).toBe('attachment-1.bin');
    expect(safeFilename('', '../x.eml')).toBe('x.eml');
    expect(safeFilename('', '')).toBe('file');
  });

  it('gives a name that is stable when made safe again', () => {
    for (const n of ['../../etc/passwd', 'CON', `${'ü'.repeat(300)}.pdf`, ' .a. ', 'a\u202eb']) {
      const once = safe(n);
      expect(safe(once)).toBe(once);
    }
  });
});
