import { readFileSync } from 'node:fs';
import { MailParser } from 'mailparser';
import { describe, expect, it } from 'vitest';

describe("the MIME parser's hold on mailparser's internals", () => {
  it('pins mailparser to one exact version, since the parser patches its private processChunk', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(pkg.dependencies['mailparser']).toMatch(/^\d+\.\d+\.\d+$/);
    const parser = new MailParser() as unknown as { processChunk?: unknown };
    expect(typeof parser.processChunk).toBe('function');
  });
});
