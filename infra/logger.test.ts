import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { SECRET_VARIABLES } from './config.js';
import { createLogger, lazyChild, redactUrl } from './logger.js';

function capture() {
  const lines: string[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { log: createLogger('info', dest), lines };
}

describe('logger', () => {
  it('blanks every secret variable of the configuration, tokens, passwords and authorization headers', () => {
    const { log, lines } = capture();
    const config = Object.fromEntries(SECRET_VARIABLES.map((name) => [name, `value-of-${name}`]));
    log.info(
      { config, password: 'hunter2', headers: { authorization: 'Bearer abc' }, token: 't0k' },
      'hello',
    );
    const line = lines.join('');
    for (const name of SECRET_VARIABLES) expect(line).not.toContain(`value-of-${name}`);
    expect(line).not.toContain('hunter2');
    expect(line).not.toContain('Bearer abc');
    expect(line).not.toContain('t0k');
    expect(JSON.parse(line)).toMatchObject({ level: 'info', msg: 'hello', password: '[redacted]' });
  });

  it('masks the password of a URL', () => {
    expect(redactUrl('amqp://guest:secret@rabbit:5672/vh')).toBe('amqp://guest:***@rabbit:5672/vh');
  });

  it('a lazy child logs with its bindings, and is made only for a level that is on', () => {
    const { log, lines } = capture();
    let made = 0;
    const parent = new Proxy(log, {
      get(target, prop) {
        if (prop === 'child') made += 1;
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const child = lazyChild(parent, { eventId: 'e-1', token: 'secret-t0k' });
    child.debug({ step: 1 }, 'not logged at info');
    expect(child.isLevelEnabled('debug')).toBe(false);
    expect(made).toBe(0);
    child.info({ step: 2 }, 'logged');
    child.warn('again');
    expect(made).toBe(1);
    expect(lines.map((l) => JSON.parse(l) as Record<string, unknown>)).toMatchObject([
      { level: 'info', eventId: 'e-1', token: '[redacted]', step: 2, msg: 'logged' },
      { level: 'warn', eventId: 'e-1', msg: 'again' },
    ]);
  });
});
