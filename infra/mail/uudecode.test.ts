import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { describe, expect, it } from 'vitest';
import { RED_PNG, SMALL_PDF } from '../../test/mail-corpus.js';
import { UudecodeStream } from './uudecode.js';

/** Made with Debian's sharutils: `uuencode red.png red.png`, `uuencode [-m] small.pdf small.pdf`. */
const fixture = (name: string) =>
  readFileSync(new URL(`../../test/fixtures/uuencode/${name}`, import.meta.url));

async function decode(input: Buffer | string, chunkSize = 7): Promise<{ bytes: Buffer; uu: UudecodeStream }> {
  const data = Buffer.from(input);
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunkSize) chunks.push(data.subarray(i, i + chunkSize));
  const uu = new UudecodeStream();
  const bytes = await buffer(Readable.from(chunks).pipe(uu));
  return { bytes, uu };
}

describe('uudecode', () => {
  it('decodes what sharutils encodes, in both forms, whatever the chunking', async () => {
    for (const chunk of [1, 7, 4096]) {
      const png = await decode(fixture('red.png.uue'), chunk);
      expect(png.bytes.equals(RED_PNG)).toBe(true);
      expect(png.uu).toMatchObject({ name: 'red.png', bytes: RED_PNG.length, problems: [] });
      const pdf = await decode(fixture('small.pdf.uue'), chunk);
      expect(pdf.bytes.equals(SMALL_PDF)).toBe(true);
      const b64 = await decode(fixture('small.pdf.b64.uue'), chunk);
      expect(b64.bytes.equals(SMALL_PDF)).toBe(true);
      expect(b64.uu.problems).toEqual([]);
    }
  });

  it('reads CRLF line ends as LF and ignores text before "begin"', async () => {
    const crlf = `Here is the file:\r\n\r\n${fixture('red.png.uue').toString('latin1').replace(/\n/g, '\r\n')}`;
    const { bytes, uu } = await decode(crlf);
    expect(bytes.equals(RED_PNG)).toBe(true);
    expect(uu.problems).toEqual([]);
  });

  it('pads lines whose trailing spaces were stripped', async () => {
    const stripped = fixture('small.pdf.uue')
      .toString('latin1')
      .split('\n')
      .map((l) => l.replace(/ +$/, ''))
      .join('\n');
    expect((await decode(stripped)).bytes.equals(SMALL_PDF)).toBe(true);
  });

  it('says so when there is nothing uuencoded, or the end is missing', async () => {
    const none = await decode('just some text\nno begin here\n');
    expect(none.bytes.length).toBe(0);
    expect(none.uu.problems).toEqual(['no "begin" line was found']);
    const cut = fixture('small.pdf.uue').toString('latin1').split('\n').slice(0, 3).join('\n');
    const short = await decode(cut);
    expect(short.bytes.length).toBeGreaterThan(0);
    expect(short.uu.problems).toEqual(['the "end" line is missing: the file may be cut short']);
  });
});
