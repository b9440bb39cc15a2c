import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testLogger } from '../../test/broker.js';
import { FakeTelegram } from '../../test/fake-telegram.js';
import { RetryableError } from '../errors.js';
import { createRateLimiter } from './rate-limiter.js';
import { createTelegramClient, type TelegramClient } from './telegram-client.js';

const TOKEN = '7000000002:AAHclientTestTokenNeverLogged_12345';

describe('Telegram client against a fake Bot API', () => {
  let fake: FakeTelegram;
  let client: TelegramClient;
  beforeAll(async () => {
    fake = await new FakeTelegram(TOKEN).start();
    client = createTelegramClient({
      token: TOKEN,
      apiRoot: fake.apiRoot,
      log: testLogger(),
      limiter: createRateLimiter({ perChatPerSecond: 100 }),
      maxInProcessWaitMs: 1500,
    });
  });
  afterAll(async () => fake?.close());

  it('waits out a short 429 in-process and sends once', async () => {
    fake.failNext('sendMessage', {
      error_code: 429,
      description: 'Too Many Requests: retry after 1',
      parameters: { retry_after: 1 },
    });
    const started = Date.now();
    const m = await client.sendMessage('11', 'hello <b>there</b>');
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(m.text).toBe('hello there');
    expect(fake.messagesTo('11')).toHaveLength(1);
  });

  it('hands a long 429 back as RetryableError with retryAfterMs', async () => {
    fake.failNext('sendMessage', {
      error_code: 429,
      description: 'Too Many Requests: retry after 30',
      parameters: { retry_after: 30 },
    });
    const err = await client.sendMessage('12', 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({
      code: 'TELEGRAM.RATE_LIMITED',
      retryAfterMs: 30_000,
      details: { errorCode: 429 },
    });
  });

  it('translates refusals into typed errors without the token, even when Telegram quotes it', async () => {
    fake.failNext('sendMessage', { error_code: 403, description: 'Forbidden: bot was blocked by the user' });
    await expect(client.sendMessage('13', 'x')).rejects.toMatchObject({
      code: 'TELEGRAM.FORBIDDEN',
      retryable: false,
    });
    fake.failNext('sendMessage', { error_code: 400, description: `Bad Request: wrong url /bot${TOKEN}/x` });
    const err = (await client.sendMessage('13', 'x').catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'TELEGRAM.BAD_REQUEST' });
    expect(
      JSON.stringify({
        m: err.message,
        s: err.stack,
        c: String(err.cause),
        d: (err as RetryableError).details,
      }),
    ).not.toContain(TOKEN.split(':')[1]);
    await expect(client.sendMessage('13', '<script>')).rejects.toMatchObject({
      code: 'TELEGRAM.BAD_REQUEST',
    });
  });

  it('downloads files, refuses paths that climb out, and never names the URL in errors', async () => {
    const file = fake.addFile({ bytes: Buffer.from('bytes of a file') });
    const info = await client.getFile(file.file_id);
    const chunks: Buffer[] = [];
    for await (const c of await client.download(info.file_path!)) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe('bytes of a file');
    await expect(client.download('../../etc/passwd')).rejects.toMatchObject({
      code: 'TELEGRAM.BAD_FILE_PATH',
    });
    const missing = (await client.download('documents/nope.bin').catch((e: unknown) => e)) as Error;
    expect(missing).toMatchObject({
      code: 'TELEGRAM.DOWNLOAD_FAILED',
      message: 'Downloading a Telegram file answered HTTP 404',
    });
    const down = createTelegramClient({ token: TOKEN, apiRoot: 'http://127.0.0.1:1', log: testLogger() });
    const err = (await down.download('documents/a.bin').catch((e: unknown) => e)) as Error;
    expect(err).toMatchObject({ code: 'TELEGRAM.DOWNLOAD_FAILED' });
    expect(`${err.message} ${err.stack} ${String((err.cause as Error).message)}`).not.toContain(TOKEN);
    await expect(down.getMe()).rejects.toMatchObject({ code: 'TELEGRAM.NETWORK', retryable: true });
  });
});
