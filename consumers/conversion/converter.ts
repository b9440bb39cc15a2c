import { PermanentError } from '../../infra/errors.js';

/** One document to convert. */
export interface ConversionInput {
  /** The document's bytes. */
  bytes: Buffer;
  /** Extension the converter is handed the bytes under (`docx`, `xlsx`, `odt`...), from the detected type. */
  extension: string;
}

/**
 * Turns an office document into a PDF. Resolves with the PDF's bytes. Rejects with a
 * {@link ConversionFailed} when the document itself cannot be converted (damaged, too slow: the same
 * bytes would fail again), or with a `RetryableError` when the converter could not be reached or was
 * busy (a Gotenberg outage): the message is tried again later.
 */
export interface Converter {
  /** `local` or `gotenberg`, as `attachment.converted` reports it. */
  readonly name: 'local' | 'gotenberg';
  /** Converts one document; `timeoutMs` bounds it. */
  convert(input: ConversionInput, timeoutMs: number): Promise<Buffer>;
}

/** The document could not be converted; `message` is the reason, for users. */
export class ConversionFailed extends PermanentError {
  constructor(code: 'CONVERT.FAILED' | 'CONVERT.TIMEOUT', reason: string, cause?: unknown) {
    super(code, reason, { cause });
  }
}

/** `%PDF-` at the start: what a converter gives back must be a PDF. */
export function looksLikePdf(bytes: Buffer): boolean {
  return bytes.subarray(0, 5).toString('latin1') === '%PDF-';
}

/** Seconds for people: "120 s", "0.5 s". */
export function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
