import { describe, expect, it } from 'vitest';
import { ALL_ROLES, loadConfig } from './config.js';
import { ConfigError } from './errors.js';

describe('loadConfig', () => {
  it('gives the documented defaults for an empty environment', () => {
    const c = loadConfig({});
    expect(c.roles).toEqual(ALL_ROLES);
    expect(c.AMQP_URL).toBe('amqp://guest:guest@127.0.0.1:5672');
    expect(c.MYSQL_URL).toBe('mysql://root@127.0.0.1:3306/postroom');
    expect(c.HTTP_PORT).toBe(8080);
    expect(c.IMAP_PORT).toBe(993);
    expect(c.IMAP_SECURE).toBe(true);
    expect(c.IMAP_AFTER).toBe('seen');
    expect(c.ATTACHMENT_MAX_BYTES).toBe(26_214_400);
    expect(c.IMAGE_MAX_PIXELS).toBe(100_000_000);
    expect(c.DRIVE_FOLDER_TEMPLATE).toBe('{yyyy}/{mm}/{from}');
    expect(c.STORAGE_DIR).toBe('./data/drive');
    expect(c.driveMode).toBe('local');
    expect(c.apiTokens).toEqual([]);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('coerces numbers, booleans and lists', () => {
    const c = loadConfig({
      HTTP_PORT: '9090',
      IMAP_SECURE: 'false',
      API_TOKENS: ' a, b ,,',
      ROLES: 'api,drive',
      OUTBOUND_ALLOW_HOSTS: 'Hooks.Local',
    });
    expect(c.HTTP_PORT).toBe(9090);
    expect(c.IMAP_SECURE).toBe(false);
    expect(c.apiTokens).toEqual(['a', 'b']);
    expect(c.roles).toEqual(['api', 'drive']);
    expect(c.outboundAllowHosts).toEqual(['hooks.local']);
  });

  it('names every bad variable and why, in one error', () => {
    let err: unknown;
    try {
      loadConfig({
        AMQP_URL: 'http://rabbit',
        HTTP_PORT: 'eighty',
        ROLES: 'api,mailer',
        IMAP_AFTER: 'delete',
        LOG_LEVEL: 'loud',
        TELEGRAM_BOT_TOKEN: '123:abc',
        IMAP_HOST: 'imap.example.com',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const name of [
      'AMQP_URL',
      'HTTP_PORT',
      'ROLES',
      'IMAP_AFTER',
      'LOG_LEVEL',
      'TELEGRAM_WEBHOOK_SECRET',
      'IMAP_USER',
      'IMAP_PASSWORD',
    ])
      expect(problems).toContain(name);
    expect(problems).toContain('unknown role "mailer"');
    expect((err as ConfigError).message).not.toContain('123:abc');
  });

  it('picks the Drive mode from the credentials given', () => {
    expect(loadConfig({ DRIVE_ACCESS_TOKEN: 't' }).driveMode).toBe('access-token');
    expect(
      loadConfig({ DRIVE_CLIENT_ID: 'i', DRIVE_CLIENT_SECRET: 's', DRIVE_REFRESH_TOKEN: 'r' }).driveMode,
    ).toBe('oauth');
    expect(() => loadConfig({ DRIVE_CLIENT_ID: 'i' })).toThrow(
      /DRIVE_CLIENT_SECRET and DRIVE_REFRESH_TOKEN go together/,
    );
  });

  it('checks the TLS settings of MySQL and RabbitMQ together', () => {
    const problems = (env: NodeJS.ProcessEnv): string => {
      try {
        loadConfig(env);
        return '';
      } catch (e) {
        return (e as ConfigError).problems.join('\n');
      }
    };
    expect(loadConfig({}).MYSQL_TLS).toBe('off');
    expect(problems({ MYSQL_TLS: 'yes' })).toMatch(/^MYSQL_TLS: has an unexpected form .*off, required/);
    expect(problems({ MYSQL_TLS: 'verify', MYSQL_TLS_CA: '/nonexistent/ca.pem' })).toBe(
      'MYSQL_TLS_CA: file not found (/nonexistent/ca.pem)',
    );
    expect(problems({ MYSQL_TLS_CA: 'package.json' })).toMatch(/only used with MYSQL_TLS=verify/);
    expect(problems({ MYSQL_TLS: 'verify', MYSQL_TLS_CA: 'package.json' })).toBe('');
    expect(problems({ AMQP_TLS_CA: 'package.json' })).toMatch(/^AMQP_TLS_CA: needs an amqps:\/\/ AMQP_URL/);
    expect(problems({ AMQP_TLS_CA: 'package.json', AMQP_URL: 'amqps://u:p@mq.example/' })).toBe('');
  });
});
