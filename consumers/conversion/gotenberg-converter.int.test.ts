import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RetryableError } from '../../infra/errors.js';
import { FakeGotenberg } from '../../test/fake-gotenberg.js';
import { officeFixture, pdfText, PDFTOTEXT } from '../../test/office.js';
import { ConversionFailed } from './converter.js';
import { createGotenbergConverter } from './gotenberg-converter.js';

describe('gotenberg converter (against a fake Gotenberg 8)', () => {
  let fake: FakeGotenberg;
  beforeEach(async () => {
    fake = await FakeGotenberg.start();
  });
  afterEach(async () => {
    await fake.close();
  });
  const docx = () => officeFixture('words.docx');

  it('posts the document as the multipart field "files" and returns the PDF', async () => {
    const converter = createGotenbergConverter({ url: fake.url });
    const pdf = await converter.convert({ bytes: docx(), extension: 'docx' }, 10_000);
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]?.files.map((f) => f.name)).toEqual(['document.docx']);
    expect(fake.requests[0]?.files[0]?.bytes.equals(docx())).toBe(true);
    if (PDFTOTEXT) expect(pdfText(pdf)).toContain(`document.docx ${docx().length}`);
  });

  it('tries again on 503 and gets the PDF once Gotenberg has room', async () => {
    fake.failNext(503, 2);
    const converter = createGotenbergConverter({ url: fake.url, backoffMs: 10 });
    const pdf = await converter.convert({ bytes: docx(), extension: 'docx' }, 10_000);
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(fake.requests).toHaveLength(3);
  });

  it('leaves a Gotenberg still busy after its tries to the consumer retries (retryable)', async () => {
    fake.failNext(503, 10);
    const converter = createGotenbergConverter({ url: fake.url, backoffMs: 10, attempts: 3 });
    const error = await converter
      .convert({ bytes: docx(), extension: 'docx' }, 10_000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as RetryableError).code).toBe('CONVERT.GOTENBERG_BUSY');
    expect(fake.requests).toHaveLength(3);
  });

  it('fails a document Gotenberg refuses (400), with its words as the reason', async () => {
    const converter = createGotenbergConverter({ url: fake.url });
    const error = await converter
      .convert({ bytes: Buffer.from('not a zip at all'), extension: 'docx' }, 10_000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConversionFailed);
    expect((error as Error).message).toMatch(
      /Gotenberg could not convert the document \(400: LibreOffice failed/,
    );
    expect(fake.requests).toHaveLength(1);
  });

  it('abandons a conversion that passes the time limit (client timeout)', async () => {
    fake.hang();
    const converter = createGotenbergConverter({ url: fake.url });
    const error = await converter.convert({ bytes: docx(), extension: 'docx' }, 300).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConversionFailed);
    expect((error as ConversionFailed).code).toBe('CONVERT.TIMEOUT');
    expect((error as Error).message).toMatch(/0\.3 s limit/);
  });

  it('sends the user and password of GOTENBERG_URL as Basic authentication, not in the URL', async () => {
    await fake.close();
    fake = await FakeGotenberg.start({ user: 'post', password: 'r00m' });
    const url = fake.url.replace('http://', 'http://post:r00m@');
    const pdf = await createGotenbergConverter({ url }).convert({ bytes: docx(), extension: 'docx' }, 10_000);
    expect(pdf.subarray(0, 5).toString('latin1')).toBe('%PDF-');
    expect(fake.requests[0]?.authorization).toBe(`Basic ${Buffer.from('post:r00m').toString('base64')}`);
  });

  it('reports an unreachable Gotenberg as retryable', async () => {
    const url = fake.url;
    await fake.close();
    fake = await FakeGotenberg.start();
    const error = await createGotenbergConverter({ url })
      .convert({ bytes: docx(), extension: 'docx' }, 5_000)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as RetryableError).code).toBe('CONVERT.GOTENBERG_UNREACHABLE');
  });
});
