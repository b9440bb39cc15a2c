import { UUENCODINGS } from './uudecode.js';

/**
 * Finds what mailparser silently repairs: multiparts whose closing boundary never comes (a cut-off
 * message), base64 bodies with characters outside the alphabet or an incomplete last group (a truncated
 * part), unknown transfer encodings, multiparts without a boundary. It watches the chunks mailparser's
 * MIME splitter (mailsplit) produces, so it sees the structure exactly as the parser does, without a
 * second parse.
 */

/** A MIME node as mailsplit emits it (the fields read here). */
export interface SplitterNode {
  type: 'node';
  root: boolean;
  parentNode: SplitterNode | false;
  contentType: string | false;
  encoding: string | false;
  disposition: string | false;
  filename: string | false;
  multipart: string | false;
  _boundary: Buffer | false;
  partNr: Array<number | string> | false;
}

/** One chunk of mailsplit's output: a node's headers, a leaf's body bytes, or multipart framing lines. */
export type SplitterChunk = SplitterNode | { type: 'body' | 'data'; node: SplitterNode; value: Buffer };

// The uuencodings are decoded after mailparser, by the parser (uudecode.ts).
const KNOWN_ENCODINGS = new Set(['', '7bit', '8bit', 'binary', 'base64', 'quoted-printable', ...UUENCODINGS]);

interface Base64State {
  node: SplitterNode;
  /** Alphabet characters and padding seen, for the quantum check. */
  symbols: number;
  invalid: number;
  padded: boolean;
  dataAfterPadding: boolean;
}

interface OpenMultipart {
  node: SplitterNode;
  boundary: string;
  closed: boolean;
}

// Byte classes for base64: 1 alphabet, 2 padding, 3 whitespace, 0 invalid.
const B64 = new Uint8Array(256);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/') B64[c.charCodeAt(0)] = 1;
B64['='.charCodeAt(0)] = 2;
for (const c of ' \t\r\n') B64[c.charCodeAt(0)] = 3;

/** `part 1.2 (image/png "logo.png")`, or `the message body` for a single-part message. */
function describePart(node: SplitterNode): string {
  const nr = (node.partNr || []).filter((p) => typeof p === 'number').join('.');
  const what = [node.contentType || 'text/plain', node.filename ? `"${node.filename}"` : '']
    .filter(Boolean)
    .join(' ');
  return node.root || !nr ? `the message body (${what})` : `part ${nr} (${what})`;
}

/** Collects structural problems while the parser runs; `finish()` returns them, in document order. */
export class MimeInspector {
  private readonly warnings: string[] = [];
  private readonly multiparts: OpenMultipart[] = [];
  private base64: Base64State | null = null;

  /** Called with every splitter chunk, before mailparser handles it. */
  observe(data: SplitterChunk): void {
    if (data.type === 'node') this.onNode(data);
    else if (data.type === 'body') this.onBody(data.node, data.value);
    else this.onFraming(data.value);
  }

  /** The warnings found so far, without the end-of-input checks (for a parse that stopped midway). */
  partial(): string[] {
    return [...this.warnings];
  }

  /** The warnings, once the input has ended. */
  finish(): string[] {
    this.endBase64();
    for (const m of this.multiparts)
      if (!m.closed)
        this.warnings.push(
          `${describePart(m.node)} is missing its closing boundary "--${m.boundary}--": the message may be truncated`,
        );
    return [...this.warnings];
  }

  private onNode(node: SplitterNode): void {
    this.endBase64();
    if (node.multipart) {
      if (node._boundary)
        this.multiparts.push({ node, boundary: node._boundary.toString('latin1'), closed: false });
      else this.warnings.push(`${describePart(node)} has no usable boundary: its parts cannot be told apart`);
      return;
    }
    const encoding = node.encoding || '';
    if (!KNOWN_ENCODINGS.has(encoding))
      this.warnings.push(
        `${describePart(node)} has an unknown transfer encoding "${encoding}": kept undecoded`,
      );
    if (encoding === 'base64')
      this.base64 = { node, symbols: 0, invalid: 0, padded: false, dataAfterPadding: false };
  }

  private onBody(node: SplitterNode, value: Buffer): void {
    const s = this.base64;
    if (!s || s.node !== node) return;
    for (let i = 0; i < value.length; i++) {
      const k = B64[value[i]!];
      if (k === 1) {
        s.symbols++;
        if (s.padded) s.dataAfterPadding = true;
      } else if (k === 2) {
        s.symbols++;
        s.padded = true;
      } else if (k === 0) s.invalid++;
    }
  }

  private onFraming(value: Buffer): void {
    if (!this.multiparts.length) return;
    for (const line of value.toString('latin1').split('\n')) {
      const l = line.replace(/[ \t\r]+$/, '');
      if (!l.startsWith('--') || !l.endsWith('--') || l.length < 5) continue;
      const boundary = l.slice(2, -2);
      for (const m of this.multiparts) if (m.boundary === boundary) m.closed = true;
    }
  }

  private endBase64(): void {
    const s = this.base64;
    this.base64 = null;
    if (!s) return;
    const part = describePart(s.node);
    if (s.invalid)
      this.warnings.push(`${part} has ${s.invalid} byte(s) that are not base64: skipped while decoding`);
    if (s.dataAfterPadding)
      this.warnings.push(`${part} has base64 data after its padding: decoded as separate pieces`);
    else if (s.symbols % 4)
      this.warnings.push(`${part} ends in an incomplete base64 group: the part is probably truncated`);
  }
}
