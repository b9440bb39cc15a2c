import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_MAX_ZIP_ENTRIES,
  DEFAULT_MAX_ZIP_RATIO,
  DEFAULT_MAX_ZIP_UNCOMPRESSED_BYTES,
  DEFAULT_THUMBNAIL_SIZE,
} from './analyze.js';
import { PROGRAM_EXTENSIONS } from './file-kinds.js';
import { BOMB_MIN_BYTES } from './inspect-zip.js';

const rules = await readFile(new URL('./RULES.md', import.meta.url), 'utf8');
/** The text with every run of white space made one space, so line wrapping does not matter. */
const prose = rules.replace(/\s+/g, ' ');

describe('RULES.md, the users’ copy of the rules', () => {
  it('lists exactly the program extensions the code quarantines', () => {
    const rule4 = /^4\. \*\*Names that run programs\.\*\*[\s\S]*?(?=^5\. )/m.exec(rules)?.[0] ?? '';
    const listed = (/`([^`]+)`/.exec(rule4.replace(/\s+/g, ' '))?.[1] ?? '')
      .split(' ')
      .map((e) => e.slice(1));
    expect(new Set(listed)).toEqual(PROGRAM_EXTENSIONS);
  });

  it('states the default bounds the code uses', () => {
    expect(DEFAULT_MAX_ZIP_ENTRIES).toBe(10_000);
    expect(prose).toContain('more than 10,000 entries');
    expect(DEFAULT_MAX_ZIP_UNCOMPRESSED_BYTES).toBe(1024 ** 3);
    expect(prose).toContain('more than 1 GiB once');
    expect(DEFAULT_MAX_ZIP_RATIO).toBe(100);
    expect(prose).toContain('expanding more than 100 times');
    expect(BOMB_MIN_BYTES).toBe(1024 * 1024);
    expect(prose).toContain('once it reaches 1 MiB unpacked');
    expect(DEFAULT_THUMBNAIL_SIZE).toBe(256);
    expect(prose).toContain('at most 256 pixels on its longest side');
  });
});
