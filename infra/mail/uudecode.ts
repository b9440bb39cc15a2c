import { Transform, type TransformCallback } from 'node:stream';

/** `Content-Transfer-Encoding` values of uuencoded parts, which mailparser passes through undecoded. */
export const UUENCODINGS: ReadonlySet<string> = new Set(['x-uuencode', 'uuencode', 'x-uue']);

/** Lines longer than this are not uuencode (61 characters is the usual length): they are skipped. */
const MAX_LINE = 1024;

/**
 * Decodes a uuencoded body as it streams: `begin <mode> <name>`, data lines, then `end` (or the
 * base64 form `begin-base64 <mode> <name>` ... `====` that sharutils' `uuencode -m` writes). Text
 * before `begin` is ignored; CRLF is read as LF. Written by hand rather than with the `uue` package,
 * which wants the whole text in memory: attachments here stream.
 *
 * After the stream has ended, `name`, `bytes` and `problems` tell what was found; a body with no
 * `begin` line decodes to nothing and says so.
 */
export class UudecodeStream extends Transform {
  /** The file name of the `begin` line ('' until one is read). */
  name = '';
  /** Decoded bytes written. */
  bytes = 0;
  /** What did not look right, for the email's warnings. */
  readonly problems: string[] = [];
  private state: 'before' | 'data' | 'base64' | 'ended' = 'before';
  private carry = '';
  private badLines = 0;

  override _transform(chunk: Buffer | string, _enc: BufferEncoding, done: TransformCallback): void {
    // uuencode is 7-bit text; latin1 keeps any stray byte as one character.
    const text = this.carry + (typeof chunk === 'string' ? chunk : chunk.toString('latin1'));
    const lines = text.split('\n');
    this.carry = lines.pop() ?? '';
    if (this.carry.length > MAX_LINE) this.carry = this.carry.slice(-MAX_LINE);
    for (const line of lines) this.line(line.replace(/\r$/, ''));
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.carry) this.line(this.carry.replace(/\r$/, ''));
    if (this.state === 'before') this.problems.push('no "begin" line was found');
    else if (this.state !== 'ended')
      this.problems.push('the "end" line is missing: the file may be cut short');
    if (this.badLines > 0) this.problems.push(`${this.badLines} line(s) that are not uuencode were skipped`);
    done();
  }

  private line(line: string): void {
    if (this.state === 'ended') return;
    if (this.state === 'before') {
      const m = /^begin(-base64)? [0-7]{1,4} (.*)$/.exec(line);
      if (m) {
        this.state = m[1] ? 'base64' : 'data';
        this.name = m[2]!.trim();
      }
      return;
    }
    if (this.state === 'base64') {
      if (line === '====') this.state = 'ended';
      else if (/^[A-Za-z0-9+/]*={0,2}$/.test(line)) this.output(Buffer.from(line, 'base64'));
      else this.badLines++;
      return;
    }
    if (line === 'end') {
      this.state = 'ended';
      return;
    }
    if (line === '') return;
    const n = (line.charCodeAt(0) - 32) & 63;
    if (n === 0) return; // the "`" (or space) line before "end"
    const chars = Math.ceil((n * 4) / 3);
    // Some encoders drop trailing spaces, so a short line is padded back with them.
    const body = line.slice(1, 1 + chars).padEnd(chars, ' ');
    if (line.length - 1 > Math.ceil(n / 3) * 4 + 1 || /[^\x20-\x60]/.test(body)) {
      this.badLines++;
      return;
    }
    const out = Buffer.alloc(Math.ceil(n / 3) * 3);
    let o = 0;
    for (let i = 0; i < body.length && o < out.length; i += 4) {
      const c = [0, 1, 2, 3].map((k) => ((body.charCodeAt(i + k) || 32) - 32) & 63);
      out[o++] = (c[0]! << 2) | (c[1]! >> 4);
      out[o++] = ((c[1]! & 15) << 4) | (c[2]! >> 2);
      out[o++] = ((c[2]! & 3) << 6) | c[3]!;
    }
    this.output(out.subarray(0, n));
  }

  private output(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.bytes += bytes.length;
    this.push(bytes);
  }
}
