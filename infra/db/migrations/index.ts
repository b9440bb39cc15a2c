import type { Migration } from 'kysely';
import * as foundation from './20261126T1200-foundation.js';
import * as drive from './20261126T1300-drive.js';
import * as outbound from './20261126T1400-outbound.js';
import * as telegram from './20261126T1410-telegram.js';
import * as conversion from './20261203T0800-conversion.js';
import * as honestDone from './20261203T0800-honest-done.js';
import * as filesBack from './20261203T0810-files-back.js';
import * as scheduler from './20261203T0930-scheduler.js';
import * as jobRunsRunning from './20261203T1600-job-runs-running.js';

/**
 * Every migration, by name; names start with a UTC timestamp so they sort in the order they were
 * written. Imported statically so the same list works from TypeScript sources and the built `dist/`.
 */
export const migrations: Record<string, Migration> = {
  '20261126T1200-foundation': foundation,
  '20261126T1300-drive': drive,
  '20261126T1400-outbound': outbound,
  '20261126T1410-telegram': telegram,
  '20261203T0800-conversion': conversion,
  '20261203T0800-honest-done': honestDone,
  '20261203T0810-files-back': filesBack,
  '20261203T0930-scheduler': scheduler,
  '20261203T1600-job-runs-running': jobRunsRunning,
};
