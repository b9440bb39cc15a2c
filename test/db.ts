import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2';
import { connectDatabase, type DatabaseHandle, type Db } from '../infra/db/database.js';
import { TEST_MYSQL_SERVER } from './env.js';

/** A throwaway database for one test file, migrated, with its URL. */
export interface TestDatabase extends DatabaseHandle {
  /** Its `mysql://` URL. */
  url: string;
  /** Its name (always contains `test`). */
  name: string;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

/** Creates and migrates a fresh database named `postroom_test_<random>`. */
export async function createTestDatabase(label = 'db'): Promise<TestDatabase> {
  const name = `postroom_test_${label.replace(/[^a-z0-9]/gi, '').slice(0, 20)}_${randomBytes(4).toString('hex')}`;
  const url = `${TEST_MYSQL_SERVER}${name}`;
  const handle = await connectDatabase(url);
  return {
    ...handle,
    url,
    name,
    async drop() {
      await handle.db.destroy().catch(() => undefined);
      await dropDatabase(name);
    },
  };
}

/** Drops a test database; refuses any name without `test` in it. */
export async function dropDatabase(name: string): Promise<void> {
  if (!name.includes('test')) throw new Error(`refusing to drop ${name}: not a test database`);
  const conn = createConnection({ uri: TEST_MYSQL_SERVER }).promise();
  try {
    await conn.query(`DROP DATABASE IF EXISTS \`${name}\``);
  } finally {
    await conn.end().catch(() => undefined);
  }
}

/**
 * Rows of the blob store: blobs, chunks, and chunks of uploads still in progress (`tmp:` keys), which
 * a finished or failed put must not leave behind.
 */
export async function blobRowCounts(db: Db): Promise<{ blobs: number; chunks: number; tmp: number }> {
  const n = async (q: { executeTakeFirstOrThrow(): Promise<{ n: unknown }> }) =>
    Number((await q.executeTakeFirstOrThrow()).n);
  const chunks = db.selectFrom('blob_chunks').select((e) => e.fn.countAll().as('n'));
  return {
    blobs: await n(db.selectFrom('blobs').select((e) => e.fn.countAll().as('n'))),
    chunks: await n(chunks),
    tmp: await n(chunks.where('blob_key', 'like', 'tmp:%')),
  };
}
