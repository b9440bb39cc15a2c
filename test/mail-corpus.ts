/**
 * Raw email messages that exercise the hard parts of MIME, for the MIME parser and IMAP poller tests.
 * Every builder returns the exact bytes a server would hand over (CRLF line ends), and the byte
 * constants below are what the parser must find in them, so tests can compare sizes and SHA-256 sums.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';

const CRLF = '\r\n';

/** A valid 1x1 transparent PNG (70 bytes). */
export const TINY_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'base64',
);

/** A valid 2x2 red PNG (97 bytes), distinct from {@link TINY_PNG}. */
export const RED_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAACXBIWXMAAAPoAAAD6AG1e1JrAAAAE0lEQVQImWP4z8DwnwGM/zMwAAAf7gP9qS/A4gAAAABJRU5ErkJggg==',
  'base64',
);

/** A minimal one-page PDF. */
export const SMALL_PDF = Buffer.from(
  [
    '%PDF-1.4',
    '1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj',
    '2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj',
    '3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >> endobj',
    'trailer << /Root 1 0 R >>',
    '%%EOF',
    '',
  ].join('\n'),
  'latin1',
);

/** The CSV carried by the forwarded message of {@link forwardedMessage}. */
export const NUMBERS_CSV = Buffer.from('quarter,revenue\r\nQ1,100\r\nQ2,120\r\n');

/** Hex SHA-256 of some bytes. */
export function sha256(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Base64 in lines of 76 characters, as mailers write it. */
export function base64Lines(bytes: Buffer): string {
  return (bytes.toString('base64').match(/.{1,76}/g) ?? []).join(CRLF);
}

/** Options common to every builder. */
export interface EnvelopeOptions {
  /** Message-ID without brackets; `null` leaves the header out. */
  messageId?: string | null;
  /** Raw Subject header value (may be RFC 2047 encoded). */
  subject?: string;
  /** Raw From header value. */
  from?: string;
  /** Raw Date header value; `null` leaves it out. */
  date?: string | null;
}

function envelope(o: EnvelopeOptions, defaults: { subject: string; messageId: string }): string[] {
  const lines = [
    `From: ${o.from ?? '"Alice Example" <Alice@Example.COM>'}`,
    'To: inbox@postroom.test',
    `Subject: ${o.subject ?? defaults.subject}`,
  ];
  const date = o.date === undefined ? 'Thu, 26 Nov 2026 10:00:00 +0000' : o.date;
  if (date !== null) lines.push(`Date: ${date}`);
  const id = o.messageId === undefined ? defaults.messageId : o.messageId;
  if (id !== null) lines.push(`Message-ID: <${id}>`);
  lines.push('MIME-Version: 1.0');
  return lines;
}

/** One MIME part: header lines, a blank line, the body. */
function part(headers: string[], body: string): string {
  return [...headers, '', body].join(CRLF);
}

/** A multipart body: its parts between `--boundary` lines, closed with `--boundary--` unless `close` is false. */
function multipart(boundary: string, parts: string[], close = true): string {
  const out = ['This is a multi-part message in MIME format.'];
  for (const p of parts) out.push(`--${boundary}`, p);
  if (close) out.push(`--${boundary}--`, '');
  return out.join(CRLF);
}

function message(headers: string[], body: string): Buffer {
  return Buffer.from(part(headers, body), 'utf8');
}

function base64Attachment(type: string, filename: string, bytes: Buffer, extra: string[] = []): string {
  return part(
    [
      `Content-Type: ${type}; name="${filename}"`,
      `Content-Disposition: attachment; filename="${filename}"`,
      'Content-Transfer-Encoding: base64',
      ...extra,
    ],
    base64Lines(bytes),
  );
}

/** A plain text message, no MIME structure at all. */
export function plainTextMessage(o: EnvelopeOptions & { body?: string } = {}): Buffer {
  return message(
    [
      ...envelope(o, { subject: 'Just text', messageId: 'plain-1@mail.example' }),
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
    ],
    o.body ?? 'Hello,\r\nno attachments here. Grüße!\r\n',
  );
}

/** The Content-ID of the inline logo in {@link nestedMultipartMessage}. */
export const LOGO_CID = 'logo.1234@mail.example';

/**
 * multipart/mixed > (multipart/alternative > (text/plain, multipart/related > (text/html, inline
 * image/png with Content-ID {@link LOGO_CID}, TINY_PNG)), application/pdf `report.pdf` (SMALL_PDF)).
 * The subject is RFC 2047 encoded (`Grüße & report`).
 */
export function nestedMultipartMessage(o: EnvelopeOptions = {}): Buffer {
  const related = multipart('rel-b3', [
    part(['Content-Type: text/html; charset=utf-8'], `<p>See our logo: <img src="cid:${LOGO_CID}"></p>`),
    part(
      [
        'Content-Type: image/png',
        `Content-ID: <${LOGO_CID}>`,
        'Content-Disposition: inline; filename="logo.png"',
        'Content-Transfer-Encoding: base64',
      ],
      base64Lines(TINY_PNG),
    ),
  ]);
  const alternative = multipart('alt-b2', [
    part(['Content-Type: text/plain; charset=utf-8'], 'See our logo.'),
    part(['Content-Type: multipart/related; boundary="rel-b3"; type="text/html"'], related),
  ]);
  const mixed = multipart('mix-b1', [
    part(['Content-Type: multipart/alternative; boundary="alt-b2"'], alternative),
    base64Attachment('application/pdf', 'report.pdf', SMALL_PDF),
  ]);
  return message(
    [
      ...envelope(o, { subject: '=?UTF-8?Q?Gr=C3=BC=C3=9Fe_&_report?=', messageId: 'nested-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="mix-b1"',
    ],
    mixed,
  );
}

/** The forwarded message inside {@link forwardedMessage}: subject `Quarterly numbers`, NUMBERS_CSV and RED_PNG attached. */
export function innerForwardedMessage(): Buffer {
  return message(
    [
      'From: Bob <bob@partner.example>',
      'To: alice@example.com',
      'Subject: Quarterly numbers',
      'Date: Wed, 25 Nov 2026 09:00:00 +0000',
      'Message-ID: <inner-1@partner.example>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="inner-b"',
    ],
    multipart('inner-b', [
      part(['Content-Type: text/plain'], 'Numbers attached.'),
      base64Attachment('text/csv', 'numbers.csv', NUMBERS_CSV),
      base64Attachment('image/png', 'chart.png', RED_PNG),
    ]),
  );
}

/**
 * A message forwarding {@link innerForwardedMessage} as a message/rfc822 part, next to a PDF of its own.
 * `disposition` is that part's Content-Disposition (`inline` by default, as Thunderbird sends it;
 * `attachment` as Outlook does; `null` for none); `filename` names it; `base64` encodes it.
 */
export function forwardedMessage(
  o: EnvelopeOptions & {
    disposition?: 'inline' | 'attachment' | null;
    filename?: string;
    base64?: boolean;
  } = {},
): Buffer {
  const inner = innerForwardedMessage();
  const disposition = o.disposition === undefined ? 'inline' : o.disposition;
  const headers = ['Content-Type: message/rfc822'];
  if (disposition)
    headers.push(`Content-Disposition: ${disposition}${o.filename ? `; filename="${o.filename}"` : ''}`);
  if (o.base64) headers.push('Content-Transfer-Encoding: base64');
  return message(
    [
      ...envelope(o, { subject: 'Fwd: Quarterly numbers', messageId: 'fwd-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="fwd-b"',
    ],
    multipart('fwd-b', [
      part(['Content-Type: text/plain'], 'FYI, see the forwarded mail.'),
      part(headers, o.base64 ? base64Lines(inner) : inner.toString('utf8')),
      base64Attachment('application/pdf', 'cover.pdf', SMALL_PDF),
    ]),
  );
}

/** A forward of a forward: the outer forwards {@link forwardedMessage}, which forwards {@link innerForwardedMessage}. */
export function doubleForwardedMessage(o: EnvelopeOptions = {}): Buffer {
  const middle = forwardedMessage({ messageId: 'fwd-middle@mail.example' });
  return message(
    [
      ...envelope(o, { subject: 'Fwd: Fwd: Quarterly numbers', messageId: 'fwd-2@mail.example' }),
      'Content-Type: multipart/mixed; boundary="fwd2-b"',
    ],
    multipart('fwd2-b', [
      part(['Content-Type: text/plain'], 'Forwarding again.'),
      part(['Content-Type: message/rfc822', 'Content-Disposition: attachment'], middle.toString('utf8')),
    ]),
  );
}

/** Decoded names of the attachments of {@link encodedFilenamesMessage}, in order. */
export const ENCODED_FILENAMES = [
  'Rechnung März 2026.pdf',
  '日本語の資料.txt',
  'résumé.doc',
  'naïve café.png',
];

/**
 * Four attachments whose names need decoding: RFC 2047 base64 (UTF-8) in Content-Disposition, an RFC 2231
 * continuation with UTF-8 percent-encoding, RFC 2047 Q (ISO-8859-1) only in Content-Type `name`, and
 * an RFC 2231 single value with a language tag. Bodies: SMALL_PDF, "日本語", "CV", TINY_PNG.
 */
export function encodedFilenamesMessage(o: EnvelopeOptions = {}): Buffer {
  return message(
    [
      ...envelope(o, { subject: 'Encoded names', messageId: 'names-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="names-b"',
    ],
    multipart('names-b', [
      part(['Content-Type: text/plain'], 'Files with foreign names.'),
      part(
        [
          'Content-Type: application/pdf',
          `Content-Disposition: attachment; filename="=?UTF-8?B?${Buffer.from(ENCODED_FILENAMES[0]!).toString('base64')}?="`,
          'Content-Transfer-Encoding: base64',
        ],
        base64Lines(SMALL_PDF),
      ),
      part(
        [
          'Content-Type: text/plain; charset=utf-8',
          'Content-Disposition: attachment;',
          " filename*0*=utf-8''%E6%97%A5%E6%9C%AC%E8%AA%9E;",
          ' filename*1*=%E3%81%AE%E8%B3%87%E6%96%99;',
          ' filename*2=".txt"',
          'Content-Transfer-Encoding: base64',
        ],
        base64Lines(Buffer.from('日本語')),
      ),
      part(
        [
          'Content-Type: application/msword; name="=?ISO-8859-1?Q?r=E9sum=E9.doc?="',
          'Content-Transfer-Encoding: base64',
        ],
        base64Lines(Buffer.from('CV')),
      ),
      part(
        [
          'Content-Type: image/png',
          "Content-Disposition: attachment; filename*=UTF-8'fr'na%C3%AFve%20caf%C3%A9.png",
          'Content-Transfer-Encoding: base64',
        ],
        base64Lines(TINY_PNG),
      ),
    ]),
  );
}

/**
 * multipart/mixed whose closing `--boundary--` never comes: the message ends right after the last part
 * (a PDF, SMALL_PDF, complete), as when a mailer or a server cuts it off.
 */
export function missingClosingBoundaryMessage(o: EnvelopeOptions = {}): Buffer {
  return message(
    [
      ...envelope(o, { subject: 'Cut off', messageId: 'cut-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="cut-b"',
    ],
    multipart(
      'cut-b',
      [
        part(['Content-Type: text/plain'], 'Attachment follows.'),
        base64Attachment('application/pdf', 'report.pdf', SMALL_PDF),
      ],
      false,
    ) + CRLF,
  );
}

/** The bytes a lenient decoder gets from the body of `bad.png` in {@link badBase64Message}: TINY_PNG. */
export const BAD_BASE64_DECODED = TINY_PNG;

/**
 * Two attachments with broken base64: `bad.png` has characters outside the alphabet sprinkled in (a lenient
 * decoder skips them and gets TINY_PNG back), `truncated.pdf` stops mid-quantum (SMALL_PDF cut short).
 */
export function badBase64Message(o: EnvelopeOptions = {}): Buffer {
  const png = TINY_PNG.toString('base64');
  const noisy = `${png.slice(0, 10)}!!${png.slice(10, 30)}*\u00e9${png.slice(30)}`;
  const pdf = SMALL_PDF.toString('base64');
  const truncated = pdf.slice(0, 4 * 20 + 2); // 20 full quanta and half of the next one
  return message(
    [
      ...envelope(o, { subject: 'Bad base64', messageId: 'b64-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="b64-b"',
    ],
    multipart('b64-b', [
      part(['Content-Type: text/plain'], 'Two broken files.'),
      part(
        [
          'Content-Type: image/png',
          'Content-Disposition: attachment; filename="bad.png"',
          'Content-Transfer-Encoding: base64',
        ],
        noisy,
      ),
      part(
        [
          'Content-Type: application/pdf',
          'Content-Disposition: attachment; filename="truncated.pdf"',
          'Content-Transfer-Encoding: base64',
        ],
        truncated,
      ),
    ]),
  );
}

/** An attachment `empty.txt` with no bytes at all, next to a non-empty `note.txt` ("note"). */
export function emptyAttachmentMessage(o: EnvelopeOptions = {}): Buffer {
  return message(
    [
      ...envelope(o, { subject: 'Empty file', messageId: 'empty-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="empty-b"',
    ],
    multipart('empty-b', [
      part(['Content-Type: text/plain'], 'An empty file is attached.'),
      part(
        [
          'Content-Type: text/plain',
          'Content-Disposition: attachment; filename="empty.txt"',
          'Content-Transfer-Encoding: base64',
        ],
        '',
      ),
      part(['Content-Type: text/plain', 'Content-Disposition: attachment; filename="note.txt"'], 'note'),
    ]),
  );
}

/** A message without a Message-ID header, carrying TINY_PNG as `pixel.png`. Same options, same bytes. */
export function noMessageIdMessage(o: Omit<EnvelopeOptions, 'messageId'> = {}): Buffer {
  return message(
    [
      ...envelope({ ...o, messageId: null }, { subject: 'No id', messageId: '' }),
      'Content-Type: multipart/mixed; boundary="noid-b"',
    ],
    multipart('noid-b', [
      part(['Content-Type: text/plain'], 'Who am I?'),
      base64Attachment('image/png', 'pixel.png', TINY_PNG),
    ]),
  );
}

/**
 * Hostile names: `../../etc/passwd`, a name with CR, LF, BEL and a bidi override (RFC 2231 percent-encoded,
 * decoded `evil\r\n\u0007name\u202Etxt.exe`), `CON.txt` and a PNG declared `application/octet-stream` with no name.
 * Bodies: "root:x:0:0", "MZ", "con", TINY_PNG.
 */
export function hostileFilenamesMessage(o: EnvelopeOptions = {}): Buffer {
  return message(
    [
      ...envelope(o, { subject: 'Hostile names', messageId: 'hostile-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="host-b"',
    ],
    multipart('host-b', [
      part(['Content-Type: text/plain'], 'Nothing to see.'),
      part(
        ['Content-Type: text/plain', 'Content-Disposition: attachment; filename="../../etc/passwd"'],
        'root:x:0:0',
      ),
      part(
        [
          'Content-Type: application/octet-stream',
          "Content-Disposition: attachment; filename*=utf-8''evil%0D%0A%07name%E2%80%AEtxt.exe",
        ],
        'MZ',
      ),
      part(['Content-Type: text/plain', 'Content-Disposition: attachment; filename="CON.txt"'], 'con'),
      part(
        ['Content-Type: application/octet-stream', 'Content-Transfer-Encoding: base64'],
        base64Lines(TINY_PNG),
      ),
    ]),
  );
}

/** A text file attached the Apple Mail way: `Content-Disposition: inline` with a filename (`notes.txt`, "my notes"). */
export function inlineTextFileMessage(o: EnvelopeOptions = {}): Buffer {
  return message(
    [
      ...envelope(o, { subject: 'Notes', messageId: 'notes-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="notes-b"',
    ],
    multipart('notes-b', [
      part(['Content-Type: text/plain'], 'My notes are attached.'),
      part(
        ['Content-Type: text/plain; charset=utf-8', 'Content-Disposition: inline; filename="notes.txt"'],
        'my notes',
      ),
    ]),
  );
}

/**
 * Deterministic pseudo-random bytes (xorshift32 from `seed`), generated piece by piece: `size` bytes in
 * total, never held whole in memory.
 */
export function deterministicBytes(size: number, seed = 1, piece = 57 * 1024): Readable {
  let produced = 0;
  let x = seed >>> 0 || 1;
  return new Readable({
    read() {
      if (produced >= size) return void this.push(null);
      const n = Math.min(piece, size - produced);
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        b[i] = x & 0xff;
      }
      produced += n;
      this.push(b);
    },
  });
}

/** SHA-256 and size of a stream's bytes, read piece by piece. */
export async function digestStream(stream: Readable): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
  }
  return { sha256: h.digest('hex'), size };
}

/** A message built by {@link largeAttachmentMessage}. */
export interface LargeMessage {
  /** A fresh stream of the raw message each call, generated as it is read. */
  stream(): Readable;
  /** Size of the raw message in bytes. */
  rawSize: number;
  /** Decoded size of the attachment `big.bin`. */
  attachmentSize: number;
  /** The attachment's bytes, generated again: `deterministicBytes(attachmentSize, seed)`. */
  attachmentBytes(): Readable;
}

/**
 * A message with one base64 attachment `big.bin` (application/octet-stream) of `attachmentSize` deterministic
 * bytes, streamed: neither the bytes nor their base64 are ever held whole in memory.
 */
export function largeAttachmentMessage(
  attachmentSize: number,
  seed = 7,
  o: EnvelopeOptions = {},
): LargeMessage {
  const head = Buffer.from(
    [
      ...envelope(o, { subject: 'Big file', messageId: `big-${attachmentSize}-${seed}@mail.example` }),
      'Content-Type: multipart/mixed; boundary="big-b"',
      '',
      '--big-b',
      'Content-Type: text/plain',
      '',
      'A big file.',
      '--big-b',
      'Content-Type: application/octet-stream; name="big.bin"',
      'Content-Disposition: attachment; filename="big.bin"',
      'Content-Transfer-Encoding: base64',
      '',
      '',
    ].join(CRLF),
  );
  const tail = Buffer.from(`${CRLF}--big-b--${CRLF}`);
  const lines = Math.ceil(attachmentSize / 57);
  const b64Length = Math.ceil(attachmentSize / 3) * 4 + Math.max(0, lines - 1) * 2;
  const rawSize = head.length + b64Length + tail.length;

  function stream(): Readable {
    // Pieces are whole base64 lines (57 bytes -> 76 characters), so each piece encodes on its own.
    const source = deterministicBytes(attachmentSize, seed, 57 * 1024);
    async function* generate(): AsyncGenerator<Buffer> {
      yield head;
      let first = true;
      for await (const bytes of source as AsyncIterable<Buffer>) {
        const text = base64Lines(bytes);
        yield Buffer.from(first ? text : CRLF + text, 'latin1');
        first = false;
      }
      yield tail;
    }
    return Readable.from(generate(), { objectMode: false });
  }

  return { stream, rawSize, attachmentSize, attachmentBytes: () => deterministicBytes(attachmentSize, seed) };
}

/**
 * A message whose third part has a header block over mailparser's 1 MB limit, after a good attachment
 * (`first.pdf`, SMALL_PDF): the parser gives up at that header, the bytes after it are not parsed.
 */
export function oversizedHeaderMessage(o: EnvelopeOptions = {}): Buffer {
  const folded = Array.from({ length: 15_000 }, (_, i) => ` x-filler-${i}=${'y'.repeat(60)};`).join(CRLF);
  return message(
    [
      ...envelope(o, { subject: 'Huge header', messageId: 'huge-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="huge-b"',
    ],
    multipart('huge-b', [
      part(['Content-Type: text/plain'], 'First a good file, then a monster.'),
      base64Attachment('application/pdf', 'first.pdf', SMALL_PDF),
      part(
        [
          `Content-Type: application/octet-stream;${CRLF}${folded}`,
          'Content-Disposition: attachment; filename="monster.bin"',
        ],
        'x',
      ),
    ]),
  );
}

/** `depth` message/rfc822 parts, each inside the one before, the innermost carrying TINY_PNG as `deep.png`. */
export function deeplyForwardedMessage(depth: number): Buffer {
  let inner = message(
    [
      'From: deep@example.com',
      'Subject: level 0',
      'Message-ID: <deep-0@mail.example>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="deep-0"',
    ],
    multipart('deep-0', [base64Attachment('image/png', 'deep.png', TINY_PNG)]),
  );
  for (let level = 1; level <= depth; level++) {
    inner = message(
      [
        'From: deep@example.com',
        `Subject: level ${level}`,
        `Message-ID: <deep-${level}@mail.example>`,
        'MIME-Version: 1.0',
        `Content-Type: multipart/mixed; boundary="deep-${level}"`,
      ],
      multipart(`deep-${level}`, [part(['Content-Type: message/rfc822'], inner.toString('utf8'))]),
    );
  }
  return inner;
}

/** `raw` forwarded as a message/rfc822 attachment of a new message (subject `Fwd: ...`). */
export function forwardOf(raw: Buffer, o: EnvelopeOptions = {}): Buffer {
  return Buffer.concat([
    Buffer.from(
      [
        ...envelope(o, {
          subject: 'Fwd: something',
          messageId: `fwd-of-${sha256(raw).slice(0, 16)}@mail.example`,
        }),
        'Content-Type: multipart/mixed; boundary="fwd-of-b"',
        '',
        '--fwd-of-b',
        'Content-Type: text/plain',
        '',
        'Forwarded below.',
        '--fwd-of-b',
        'Content-Type: message/rfc822',
        'Content-Disposition: attachment',
        '',
        '',
      ].join(CRLF),
    ),
    raw,
    Buffer.from(`${CRLF}--fwd-of-b--${CRLF}`),
  ]);
}

/**
 * Legacy mail: `red.png` and `small.pdf` uuencoded by Debian's sharutils (`test/fixtures/uuencode/`),
 * sent as `x-uuencode` (named by the part) and `uuencode` and `x-uue` (named only by their `begin`
 * line; the PDF in its base64 form), with CRLF line ends, plus an `x-uuencode` part with no data.
 */
export function uuencodedMessage(o: EnvelopeOptions = {}): Buffer {
  const fixture = (name: string) =>
    readFileSync(new URL(`./fixtures/uuencode/${name}`, import.meta.url))
      .toString('latin1')
      .replace(/\n/g, CRLF);
  const uu = (encoding: string, body: string, name?: string) =>
    part(
      [
        `Content-Type: application/octet-stream${name ? `; name="${name}"` : ''}`,
        `Content-Disposition: attachment${name ? `; filename="${name}"` : ''}`,
        `Content-Transfer-Encoding: ${encoding}`,
      ],
      body,
    );
  return message(
    [
      ...envelope(o, { subject: 'Old mailer', messageId: 'uue-1@mail.example' }),
      'Content-Type: multipart/mixed; boundary="uue-b"',
    ],
    multipart('uue-b', [
      part(['Content-Type: text/plain'], 'Files, the old way.'),
      uu('x-uuencode', fixture('red.png.uue'), 'red.png'),
      uu('uuencode', fixture('small.pdf.uue')),
      uu('X-UUE', fixture('small.pdf.b64.uue')),
      uu('x-uuencode', `nothing here${CRLF}`, 'void.bin'),
    ]),
  );
}
