/**
 * `npm run asyncapi [file]`: writes the AsyncAPI 3 document of Postroom's exchanges, routing keys and
 * payloads (default `asyncapi.json`).
 */
import { writeFileSync } from 'node:fs';
import { buildAsyncApi } from '../contracts/asyncapi.js';

const file = process.argv[2] ?? 'asyncapi.json';
writeFileSync(file, `${JSON.stringify(buildAsyncApi(), null, 2)}\n`);
process.stdout.write(`wrote ${file}\n`);
