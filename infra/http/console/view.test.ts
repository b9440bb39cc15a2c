import { describe, expect, it } from 'vitest';
import { bars, segments } from './stats.routes.js';
import { duration, escapeText, helpers, renderView } from './view.js';

const page = { title: 'T', csrf: 'c', who: 'API token 1' };

describe('console views', () => {
  it('escapes HTML and shows bidi controls as code points', () => {
    expect(escapeText('<img src=x onerror="alert(1)">&\'')).toBe(
      '&#60;img src=x onerror=&#34;alert(1)&#34;&#62;&#38;&#39;',
    );
    expect(escapeText('invoice\u202Efdp.exe \u2066x\u2069')).toBe('invoice[U+202E]fdp.exe [U+2066]x[U+2069]');
  });

  it('renders hostile mail in the list as text, never as markup', () => {
    const html = renderView('mail', page, {
      items: [
        {
          id: '00000000-0000-4000-8000-000000000001',
          subject: '<script>alert(1)</script>',
          from: '"><svg onload=alert(2)>@x',
          status: 'done',
          attachmentCount: 1,
          receivedAt: '2026-11-26T10:00:00.000Z',
        },
      ],
      filters: { q: '"><script>alert(3)</script>' },
      next: null,
      paged: false,
      processing: 0,
    });
    expect(html).toContain('&#60;script&#62;alert(1)&#60;/script&#62;');
    expect(html).toContain('&#34;&#62;&#60;svg onload=alert(2)&#62;@x');
    expect(html).toContain('value="&#34;&#62;&#60;script&#62;alert(3)&#60;/script&#62;"');
    // Our own script tag is the only one; no attribute was broken out of.
    expect(html.match(/<script/g)).toHaveLength(1);
    expect(html).not.toMatch(/<svg onload/);
  });

  it('draws a bar per queue scaled to the longest, and stacked parts per stage', () => {
    expect(
      bars([
        { label: 'a', value: 5 },
        { label: 'b', value: 0 },
        { label: 'c', value: 10 },
      ]).map((b) => b.percent),
    ).toEqual([50, 0, 100]);
    expect(bars([{ label: 'a', value: 0 }])[0]?.percent).toBe(0);
    expect(segments({ done: 3, processing: 1, failed: 0 })).toEqual([
      { state: 'done', value: 3, offset: 0, percent: 75 },
      { state: 'processing', value: 1, offset: 75, percent: 25 },
    ]);
    const html = renderView('stats', page, {
      stages: [],
      oldest: null,
      queues: [
        { consumer: 'drive-upload', queue: 'q', declared: true, messages: 4, consumers: 1, retryMessages: 0 },
      ],
      deadQueue: { queue: 'dead', messages: 2 },
      chart: bars([
        { label: 'drive-upload', value: 4 },
        { label: 'dead', value: 2 },
      ]),
      deadLetters: { parked: 2, replayed: 0 },
      outbox: { pending: 0, oldestPendingSince: null },
    });
    expect(html).toMatch(/<rect class="chart-bar" x="130" y="4" width="220\.0"/);
    expect(html).toMatch(/<rect class="chart-bar chart-bar-dead" x="130" y="4" width="110\.0"/);
  });

  it('says how long ago, and the instant itself', () => {
    const h = helpers(new Date('2026-12-03T10:00:00Z'));
    expect(h.ago('2026-12-03T09:55:00Z')).toBe('5 min ago');
    expect(h.abs('2026-12-03T09:55:00.123Z')).toBe('2026-12-03 09:55:00 UTC');
    expect([duration(59), duration(3599), duration(7200), duration(200_000)]).toEqual([
      '59 s',
      '59 min',
      '2 h',
      '2 d',
    ]);
    expect(h.safeLink('javascript:alert(1)')).toBeNull();
    expect(h.safeLink('https://drive.example/file/1')).toBe('https://drive.example/file/1');
  });
});
