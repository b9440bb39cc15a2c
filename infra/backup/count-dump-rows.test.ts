import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countDumpRows } from './backup.js';

describe('countDumpRows', () => {
  it('counts one row per tuple, whatever the strings hold, in --quick and extended forms', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'postroom-count-'));
    try {
      const file = join(dir, 'dump.sql');
      await writeFile(
        file,
        [
          '-- INSERT INTO `fake` VALUES (1);',
          'INSERT INTO `t` VALUES',
          "(1,'x(y;z'),",
          "(2,'it\\'s (a) test\\\\'),",
          "(3,'doubled '' quote ('),",
          '(4,0x28293B);',
          "INSERT INTO `u` VALUES (1,'a'),(2,NULL),(3,'b)');",
          'INSERT INTO `empty_after` VALUES',
          "(1,'');",
          '',
        ].join('\n'),
      );
      expect(await countDumpRows(file)).toEqual({ t: 4, u: 3, empty_after: 1 });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
