import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../infra/errors.js';
import { hookMatches, loadHooksFile, parseHooks } from './hooks-file.js';

const problemsOf = (content: unknown): string[] => {
  try {
    parseHooks(content);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('HOOKS_FILE', () => {
  it('accepts the example of SPEC.md and applies defaults', () => {
    const hooks = parseHooks([
      {
        name: 'crm',
        url: 'https://crm.example/hooks/mail',
        events: ['email.processed'],
        method: 'POST',
        headers: { 'X-Api-Key': '...' },
        secret: 'shared-secret',
        timeoutMs: 10000,
        maxRetryHours: 6,
      },
      { name: 'audit', url: 'http://audit.example/in', events: ['email.received', 'attachment.uploaded'] },
    ]);
    expect(hooks[0]).toEqual({
      name: 'crm',
      url: 'https://crm.example/hooks/mail',
      events: ['email.processed'],
      method: 'POST',
      headers: { 'X-Api-Key': '...' },
      secret: 'shared-secret',
      timeoutMs: 10000,
      maxRetryHours: 6,
      when: null,
    });
    expect(hooks[1]).toMatchObject({
      method: 'POST',
      headers: {},
      secret: null,
      timeoutMs: 10_000,
      maxRetryHours: 24,
    });
    expect(Object.isFrozen(hooks[1])).toBe(true);
  });

  it('calls a hook with `when` only for events whose data has those values', () => {
    const [hook] = parseHooks([
      { name: 'changed', url: 'https://x.example/', events: ['api.polled'], when: { changed: true } },
    ]);
    expect(hookMatches(hook!, { changed: true, job: 'rates' })).toBe(true);
    expect(hookMatches(hook!, { changed: false, job: 'rates' })).toBe(false);
    expect(
      problemsOf([{ name: 'w', url: 'https://x.example/', events: ['api.polled'], when: { changed: [1] } }]),
    ).toEqual(expect.arrayContaining([expect.stringMatching(/^HOOKS_FILE\[0\]\.when\.changed: /)]));
  });

  it('names every problem with its place, and never shows a secret or header value', () => {
    const problems = problemsOf([
      { name: 'crm', url: 'file:///etc/passwd', events: ['email.processed'], secret: 'hunter2-secret' },
      { name: 'crm', url: 'ftp://x.example/', events: ['email.sent', 'outbound.completed'] },
      { name: 'bad name!', url: 'not a url', events: [], method: 'GET', timeoutMs: 5 },
      {
        name: 'h',
        url: 'https://user:pw@x.example/',
        events: ['email.received'],
        headers: { 'Idempotency-Key': 'x', 'Bad Name': 'v', 'X-Ok': 'a\r\nInjected: 1' },
        timeoutMs: 999_999,
        maxRetryHours: 0,
      },
      { name: 'extra', url: 'https://x.example/', events: ['email.received'], retries: 3 },
    ]);
    expect(problems).toEqual(
      expect.arrayContaining([
        'HOOKS_FILE[0].url: must use http or https (got "file")',
        'HOOKS_FILE[1].name: "crm" is already used by HOOKS_FILE[0]',
        'HOOKS_FILE[1].url: must use http or https (got "ftp")',
        expect.stringMatching(
          /^HOOKS_FILE\[1\]\.events\[0\]: unknown event type "email.sent" \(known: email.received, /,
        ),
        'HOOKS_FILE[1].events[1]: outbound.completed cannot trigger a hook (each call would trigger the next)',
        expect.stringMatching(/^HOOKS_FILE\[2\]\.name: must start with a letter or digit/),
        'HOOKS_FILE[2].events: must NOT have fewer than 1 items',
        'HOOKS_FILE[2].method: must be one of POST, PUT, PATCH',
        'HOOKS_FILE[2].timeoutMs: must be >= 100',
        'HOOKS_FILE[3].timeoutMs: must be <= 120000',
        'HOOKS_FILE[3].maxRetryHours: must be >= 0.01',
        'HOOKS_FILE[4]: unknown field "retries"',
      ]),
    );
    // A file whose shape is right: the problems the schema cannot see, in file order.
    const semantic = problemsOf([
      { name: 'crm', url: 'file:///etc/passwd', events: ['email.processed'], secret: 'hunter2-secret' },
      {
        name: 'h',
        url: 'https://user:pw@x.example/',
        events: ['email.received'],
        headers: { 'Idempotency-Key': 'x', 'Bad Name': 'v', 'X-Ok': 'a\r\nInjected: 1' },
      },
      { name: 'not-url', url: 'not a url', events: ['email.received'] },
    ]);
    expect(semantic).toEqual([
      'HOOKS_FILE[0].url: must use http or https (got "file")',
      'HOOKS_FILE[1].url: must not carry a user name or password; put credentials in headers',
      'HOOKS_FILE[1].headers.Idempotency-Key: is set by Postroom and cannot be overridden',
      'HOOKS_FILE[1].headers: "Bad Name" is not a valid header name',
      'HOOKS_FILE[1].headers.X-Ok: must not contain line breaks or NUL',
      'HOOKS_FILE[2].url: is not an absolute URL',
    ]);
    expect(JSON.stringify(semantic)).not.toContain('hunter2');
    expect(JSON.stringify(semantic)).not.toContain('Injected');
  });

  it('says so when the file is not an array, not JSON, or missing, without quoting its text', () => {
    expect(problemsOf({ name: 'crm' })).toEqual(['HOOKS_FILE: must be a JSON array of hooks']);
    const dir = mkdtempSync(join(tmpdir(), 'hooks-'));
    const file = join(dir, 'hooks.json');
    writeFileSync(file, '[\n{"name":"a","secret":"topsecret",}\n]');
    expect(() => loadHooksFile(file)).toThrow(ConfigError);
    try {
      loadHooksFile(file);
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([`HOOKS_FILE: ${file} is not valid JSON (line 2)`]);
    }
    expect(() => loadHooksFile(join(dir, 'missing.json'))).toThrow(
      /HOOKS_FILE: cannot read .*missing\.json \(ENOENT\)/,
    );
  });
});
