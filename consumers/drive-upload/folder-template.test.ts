import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../infra/errors.js';
import { renderFolderTemplate, safeFolderName, validateFolderTemplate } from './folder-template.js';

const mail = {
  date: new Date('2026-03-05T23:30:00Z'),
  from: 'Ana Lima <Ana.Lima@Example.COM>',
  subject: 'Invoice 42',
};

describe('renderFolderTemplate', () => {
  it('fills the default template with the UTC date and the lower-cased address', () => {
    expect(renderFolderTemplate('{yyyy}/{mm}/{from}', mail)).toEqual(['2026', '03', 'ana.lima@example.com']);
  });

  it('knows every documented placeholder and mixes them with literal text', () => {
    expect(renderFolderTemplate('mail-{yyyy}-{mm}-{dd}/{from_domain}/{subject}', mail)).toEqual([
      'mail-2026-03-05',
      'example.com',
      'Invoice 42',
    ]);
  });

  it('takes the date in the time zone asked for', () => {
    expect(renderFolderTemplate('{yyyy}/{mm}/{dd}', mail, { timeZone: 'Asia/Tokyo' })).toEqual([
      '2026',
      '03',
      '06',
    ]);
  });

  it('never lets a value add a folder level or climb out of the root', () => {
    const evil = { ...mail, subject: '../../etc/passwd', from: 'x@a/b\\c' };
    const segments = renderFolderTemplate('{subject}/{from}', evil);
    expect(segments).toEqual(['___.._etc_passwd', 'x@a_b_c']);
    for (const s of segments) expect(s).not.toMatch(/[/\\]/);
  });

  it('gives empty values a placeholder name', () => {
    expect(
      renderFolderTemplate('{subject}/{from_domain}', { ...mail, subject: '  \t ', from: 'no-domain' }),
    ).toEqual(['_', '_']);
  });

  it('drops empty template segments', () => {
    expect(renderFolderTemplate('/{yyyy}//{mm}/', mail)).toEqual(['2026', '03']);
  });

  it('rejects an invalid template with a ConfigError naming the variable', () => {
    expect(() => renderFolderTemplate('{yyyy}/{sender}', mail)).toThrow(ConfigError);
    expect(() => renderFolderTemplate('{yyyy}/{sender}', mail)).toThrow(
      /DRIVE_FOLDER_TEMPLATE: unknown placeholder \{sender\}/,
    );
  });
});

describe('validateFolderTemplate', () => {
  it('accepts every documented placeholder', () => {
    expect(validateFolderTemplate('{yyyy}/{mm}/{dd}/{from}/{from_domain}/{subject}')).toEqual([]);
  });

  it('names each unknown placeholder and stray brace', () => {
    const problems = validateFolderTemplate('{year}/{mm}/{From}/{subject');
    expect(problems).toHaveLength(3);
    expect(problems[0]).toMatch(/unknown placeholder \{year\}.*known: \{yyyy\}/);
    expect(problems[1]).toMatch(/unknown placeholder \{From\}/);
    expect(problems[2]).toMatch(/unbalanced/);
  });

  it('refuses a template with no folder', () => {
    expect(validateFolderTemplate(' / ')).toEqual([expect.stringMatching(/names no folder/)]);
  });
});

describe('safeFolderName', () => {
  it('turns control and bidi characters into spaces and squeezes white space', () => {
    expect(safeFolderName('a\u0000b\r\nc\u202Ed   e')).toBe('a b c d e');
  });

  it('replaces leading dots so no name is ., .. or hidden', () => {
    expect(safeFolderName('.')).toBe('_');
    expect(safeFolderName('..')).toBe('__');
    expect(safeFolderName('.hidden')).toBe('_hidden');
    expect(safeFolderName('a.b.')).toBe('a.b.');
  });

  it('cuts long names on a character boundary and trims the cut', () => {
    expect(safeFolderName(`${'x'.repeat(99)} 😀`, 100)).toBe('x'.repeat(99));
    expect(safeFolderName('😀'.repeat(200), 10)).toBe('😀'.repeat(10));
  });

  it('normalizes to NFC so the same name typed two ways is one folder', () => {
    expect(safeFolderName('Cafe\u0301')).toBe(safeFolderName('Caf\u00e9'));
  });
});
