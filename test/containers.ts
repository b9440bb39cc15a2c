import type * as Testcontainers from 'testcontainers';

/**
 * What the tests' container paths share (test/global-setup.ts for RabbitMQ and MySQL,
 * test/dovecot-container.ts for Dovecot): loading testcontainers, the containers' limits, and the label
 * that marks a run's containers.
 */

/**
 * testcontainers, imported only on a container path: machines with local services never load it. No
 * reaper container (its image would have to be pulled too); whoever starts a container stops it, and
 * the global teardown removes what a run left behind (RUN_LABEL).
 */
export async function testcontainers(): Promise<typeof Testcontainers> {
  process.env['TESTCONTAINERS_RYUK_DISABLED'] ??= 'true';
  return import('testcontainers');
}

/**
 * Limits for the containers, from TEST_CONTAINER_ULIMITS (`nofile=1024:4096,nproc=4096:8192`): podman's
 * Docker API asks for Docker's defaults, which fail on hosts whose hard limits are lower.
 */
export function containerUlimits(): Record<string, { soft: number; hard: number }> {
  const ulimits: Record<string, { soft: number; hard: number }> = {};
  for (const m of (process.env['TEST_CONTAINER_ULIMITS'] ?? '').matchAll(/(\w+)=(\d+):(\d+)/g))
    ulimits[m[1]!] = { soft: Number(m[2]), hard: Number(m[3]) };
  return ulimits;
}

/** Label on the containers the test workers start; its value is TEST_CONTAINER_RUN, one per run. */
export const RUN_LABEL = 'postroom.test-run';

/** The image of the tests' Dovecot when it runs in a container (TEST_DOVECOT_IMAGE overrides it). */
export const DEFAULT_DOVECOT_IMAGE = 'dovecot/dovecot:2.3.21';

/** `localhost` as testcontainers names the machine's own engine, as the numeric loopback address. */
export const loopback = (host: string): string => (host === 'localhost' ? '127.0.0.1' : host);
