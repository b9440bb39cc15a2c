import { describe, expect, it } from 'vitest';
import { escapeHtml, formatBytes, htmlLink } from './html.js';
import { attachmentLine, joinWithinLimit } from './email-format.js';
import { redactToken, scrubError } from './redact.js';

const TOKEN = '123456789:AAFakeTokenForTests_abcdefghijklmnop';

describe('token redaction', () => {
  it('removes the token, and anything shaped like one, from text', () => {
    expect(redactToken(`GET https://api.telegram.org/file/bot${TOKEN}/documents/a.pdf failed`, TOKEN)).toBe(
      'GET https://api.telegram.org/file/bot<bot-token>/documents/a.pdf failed',
    );
    expect(redactToken('other 987654321:BBanotherTokenShapedValue_1234567890', TOKEN)).toBe(
      'other <bot-token>',
    );
  });

  it('scrubs an error and its causes, dropping fields that may quote URLs', () => {
    const inner = Object.assign(new Error(`connect to /bot${TOKEN}/getFile`), {
      url: `https://x/bot${TOKEN}`,
    });
    const outer = new TypeError(`fetch ${TOKEN} failed`, { cause: inner });
    const safe = scrubError(outer, TOKEN);
    expect(safe.name).toBe('TypeError');
    expect(
      JSON.stringify({
        m: safe.message,
        s: safe.stack,
        c: (safe.cause as Error).message,
        k: Object.keys(safe.cause as object),
      }),
    ).not.toContain(TOKEN);
    expect((safe.cause as Error).message).toBe('connect to /bot<bot-token>/getFile');
  });
});

describe('message text', () => {
  it('escapes what HTML parse mode treats specially', () => {
    expect(escapeHtml('<b> & "q"')).toBe('&lt;b&gt; &amp; &quot;q&quot;');
  });

  it('links http(s) only, and shows other links as code', () => {
    expect(htmlLink('https://d.example/a?x=1&y=2', 'open')).toBe(
      '<a href="https://d.example/a?x=1&amp;y=2">open</a>',
    );
    expect(htmlLink('file:///srv/a<b>.pdf', 'open')).toBe('<code>file:///srv/a&lt;b&gt;.pdf</code>');
    expect(htmlLink('javascript:alert(1)', 'open')).toBe('<code>javascript:alert(1)</code>');
  });

  it('formats sizes and attachment lines', () => {
    expect([formatBytes(512), formatBytes(1536), formatBytes(25 * 1024 * 1024)]).toEqual([
      '512 B',
      '1.5 KB',
      '25 MB',
    ]);
    expect(
      attachmentLine({
        filename: 'a.exe',
        verdict: 'quarantined',
        reason: 'a <program>',
        driveStatus: 'skipped',
        link: null,
      }),
    ).toBe('☣️ <b>a.exe</b>: quarantined (a &lt;program&gt;)');
  });

  it('announces the PDF of a converted document, or why there is none', () => {
    const docx = {
      filename: 'report.docx',
      verdict: 'accepted',
      reason: 'Word document',
      driveStatus: 'uploaded',
      link: 'https://drive.example/docx',
    };
    expect(
      attachmentLine({
        ...docx,
        conversion: {
          status: 'converted',
          reason: 'ok',
          driveStatus: 'uploaded',
          link: 'https://drive.example/pdf',
        },
      }),
    ).toBe(
      '✅ <b>report.docx</b>: accepted · filed: <a href="https://drive.example/docx">open</a> · PDF: <a href="https://drive.example/pdf">open</a>',
    );
    expect(
      attachmentLine({
        ...docx,
        conversion: {
          status: 'failed',
          reason: 'LibreOffice could not <convert>',
          driveStatus: null,
          link: null,
        },
      }),
    ).toMatch(/ · ⚠️ no PDF \(LibreOffice could not &lt;convert&gt;\)$/);
    expect(attachmentLine(docx)).not.toMatch(/PDF/);
  });

  it('keeps a message under the limit and says how many lines were left out', () => {
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i} ${'x'.repeat(80)}`);
    const text = joinWithinLimit(['head'], lines, 1000);
    expect(text.length).toBeLessThanOrEqual(1000);
    expect(text).toMatch(/\n… and \d+ more$/);
    expect(joinWithinLimit(['head'], ['a', 'b'], 1000)).toBe('head\na\nb');
  });
});
