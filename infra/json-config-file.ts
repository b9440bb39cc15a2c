import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';

/**
 * Reads and parses the JSON file a variable names (HOOKS_FILE, SCHEDULES_FILE): a `ConfigError` naming
 * the variable when it cannot be read or is not JSON. A parse error keeps only the line: V8 quotes a
 * piece of the text in some messages, and these files hold API keys and signing secrets.
 */
export function readJsonConfigFile(variable: string, path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([
      `${variable}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    ]);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    const line = at === undefined ? null : text.slice(0, Number(at)).split('\n').length;
    throw new ConfigError([
      `${variable}: ${path} is not valid JSON${line === null ? '' : ` (line ${line})`}`,
    ]);
  }
}
