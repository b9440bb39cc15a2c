import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../infra/config.js';
import { ConfigError } from '../../infra/errors.js';
import { testLogger } from '../../test/broker.js';
import {
  certificateProblem,
  imapAccount,
  imapClientOptions,
  messageMaxBytes,
  parseImapAfter,
} from './imap-options.js';
import { createWakeup } from './wakeup.js';

const base = { IMAP_HOST: 'imap.example.com', IMAP_USER: 'ana@example.com' };

describe('IMAP options', () => {
  it('reads IMAP_AFTER', () => {
    expect(parseImapAfter('seen')).toEqual({ kind: 'seen' });
    expect(parseImapAfter('none')).toEqual({ kind: 'none' });
    expect(parseImapAfter('move:Archive/Postroom')).toEqual({ kind: 'move', folder: 'Archive/Postroom' });
    expect(() => parseImapAfter('move: ')).toThrow(ConfigError);
  });

  it('bounds a message at twice ATTACHMENT_MAX_BYTES plus 1 MiB', () => {
    expect(messageMaxBytes(26_214_400)).toBe(53_477_376);
  });

  it('uses TLS and the password by default', () => {
    const config = loadConfig({ ...base, IMAP_PASSWORD: 'secret' });
    const options = imapClientOptions(config, testLogger());
    expect(options).toMatchObject({
      host: 'imap.example.com',
      port: 993,
      secure: true,
      auth: { user: 'ana@example.com', pass: 'secret' },
    });
    expect(imapAccount(config)).toBe('ana@example.com@imap.example.com');
  });

  it('uses XOAUTH2 when IMAP_ACCESS_TOKEN is set', () => {
    const config = loadConfig({
      ...base,
      IMAP_ACCESS_TOKEN: 'ya29.token',
      IMAP_SECURE: 'false',
      IMAP_PORT: '143',
    });
    const options = imapClientOptions(config, testLogger());
    expect(options).toMatchObject({
      port: 143,
      secure: false,
      auth: { user: 'ana@example.com', accessToken: 'ya29.token' },
    });
    expect(options.auth).not.toHaveProperty('pass');
  });

  it('refuses to build a client without host or credentials', () => {
    expect(() => imapClientOptions(loadConfig({}), testLogger())).toThrow(ConfigError);
  });

  it('tells a refused server certificate apart, naming the server, the reason and the fix', () => {
    const tls = { IMAP_HOST: 'imap.example.com', IMAP_PORT: 993, IMAP_SECURE: true };
    const untrusted = Object.assign(new Error('self-signed certificate in certificate chain'), {
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    expect(certificateProblem(untrusted, tls)).toBe(
      'IMAP server certificate refused for imap.example.com:993 (TLS): self-signed certificate in ' +
        'certificate chain (SELF_SIGNED_CERT_IN_CHAIN); if the server uses a private or self-signed CA, ' +
        'start Postroom with NODE_EXTRA_CA_CERTS=/path/to/ca.pem (reconnecting with backoff meanwhile)',
    );
    const wrongName = Object.assign(new Error("Hostname/IP does not match certificate's altnames"), {
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
    const starttls = { ...tls, IMAP_PORT: 143, IMAP_SECURE: false };
    expect(certificateProblem(wrongName, starttls)).toMatch(
      /^IMAP server certificate refused for imap\.example\.com:143 \(STARTTLS\): .*set IMAP_HOST to a name/,
    );
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(certificateProblem(refused, tls)).toBeNull();
    expect(certificateProblem(new Error('no code'), tls)).toBeNull();
    expect(certificateProblem(undefined, tls)).toBeNull();
  });
});

describe('wake-up signal', () => {
  it('keeps a notification given before the wait, and times out without one', async () => {
    const wake = createWakeup();
    wake.notify();
    wake.notify();
    expect(await wake.wait(1_000)).toBe(true);
    expect(await wake.wait(10)).toBe(false);
    const waiting = wake.wait(1_000);
    wake.notify();
    expect(await waiting).toBe(true);
  });
});
