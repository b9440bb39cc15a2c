import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { isDuplicateKey, type Db } from '../db/database.js';
import type { DriveFoldersTable } from '../db/tables/drive.table.js';
import { RetryableError } from '../errors.js';
import type { Logger } from '../logger.js';
import { sleep } from './drive-errors.js';

/**
 * The claim protocol that makes "create this Drive folder if it is missing" happen once across every
 * process sharing the database. Drive itself has no unique names, so the unique key of
 * `drive_folders` (parent id, SHA-256 of the name) decides:
 *
 * 1. A `ready` row answers at once.
 * 2. Otherwise the caller reserves a Drive id (files.generateIds) and inserts a `creating` row holding
 *    it. The insert that wins the key creates the folder (adopting one of that name already in Drive,
 *    if any) *with the reserved id*, then marks the row `ready`.
 * 3. Losers poll the row. A `creating` row older than the claim timeout (its holder died or stalls) is
 *    taken over with a conditional UPDATE, and the taker repeats step 2's creation with the same
 *    reserved id. That is always safe: Drive refuses a second file with one id (409), so at worst the
 *    taker learns the folder is already there. No path leads to two folders.
 */

/** What the protocol needs from Drive and the database. */
export interface FolderClaimDeps {
  db: Db;
  /** Names this process in `claimed_by`. */
  owner: string;
  /** A `creating` claim older than this (ms) may be taken over. */
  claimTimeoutMs: number;
  /** Longest wait (ms) for another process's claim before giving up with `DRIVE.FOLDER_BUSY`. */
  maxWaitMs: number;
  /** Reserves a Drive id. */
  reserveId(): Promise<string>;
  /** The id of an existing folder with this name under the parent (the oldest), or null. */
  findExisting(parentId: string, name: string): Promise<string | null>;
  /** Creates the folder with the given id; must treat Drive's 409 (id in use) as success. */
  create(folderId: string, parentId: string, name: string): Promise<void>;
  log?: Logger;
}

/** Hex SHA-256 of a folder name, the second half of the `drive_folders` key. */
function folderNameHash(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex');
}

/** Returns the id of the folder `name` under `parentId`, creating it once across all processes. */
export async function ensureChildFolder(
  deps: FolderClaimDeps,
  parentId: string,
  name: string,
): Promise<string> {
  const key = { parentId, nameHash: folderNameHash(name) };
  const started = Date.now();
  let row = await findClaim(deps.db, key);
  if (!row) {
    const folderId = await deps.reserveId();
    if (await insertClaim(deps.db, key, name, folderId, deps.owner))
      return materialize(deps, key, name, folderId);
    row = await findClaim(deps.db, key);
  }
  for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
    if (!row) return ensureChildFolder(deps, parentId, name); // the row vanished (cleared by hand): start over
    if (row.status === 'ready') return row.folder_id;
    // Our own stale claim (an earlier attempt failed half-way) or a stale one of another process.
    if (
      row.claimed_by === deps.owner ||
      (await takeOverClaim(deps.db, key, deps.owner, deps.claimTimeoutMs))
    ) {
      deps.log?.info({ parentId, folder: name, from: row.claimed_by }, 'finishing a folder claim');
      return materialize(deps, key, name, row.folder_id);
    }
    if (Date.now() - started > deps.maxWaitMs)
      throw new RetryableError(
        'DRIVE.FOLDER_BUSY',
        `Drive folder "${name}" under ${parentId} is being created by ${row.claimed_by}`,
        {
          details: { parentId, folderId: row.folder_id },
        },
      );
    await sleep(delay);
    row = await findClaim(deps.db, key);
  }
}

interface ClaimKey {
  parentId: string;
  nameHash: string;
}

async function materialize(
  deps: FolderClaimDeps,
  key: ClaimKey,
  name: string,
  reservedId: string,
): Promise<string> {
  const existing = await deps.findExisting(key.parentId, name);
  const folderId = existing ?? reservedId;
  if (!existing) await deps.create(reservedId, key.parentId, name);
  await deps.db
    .updateTable('drive_folders')
    .set({ folder_id: folderId, status: 'ready', ready_at: sql<Date>`UTC_TIMESTAMP(3)` })
    .where('parent_id', '=', key.parentId)
    .where('name_hash', '=', key.nameHash)
    .execute();
  return folderId;
}

async function findClaim(db: Db, key: ClaimKey): Promise<DriveFoldersTable | undefined> {
  return db
    .selectFrom('drive_folders')
    .selectAll()
    .where('parent_id', '=', key.parentId)
    .where('name_hash', '=', key.nameHash)
    .executeTakeFirst();
}

/** Inserts a `creating` claim; false when another process holds the key already. */
async function insertClaim(
  db: Db,
  key: ClaimKey,
  name: string,
  folderId: string,
  owner: string,
): Promise<boolean> {
  try {
    await db
      .insertInto('drive_folders')
      .values({
        parent_id: key.parentId,
        name_hash: key.nameHash,
        name,
        folder_id: folderId,
        status: 'creating',
        claimed_by: owner,
        claimed_at: sql<Date>`UTC_TIMESTAMP(3)`,
        ready_at: null,
      })
      .execute();
    return true;
  } catch (err) {
    if (isDuplicateKey(err)) return false;
    throw err;
  }
}

/** Takes over a `creating` claim older than `timeoutMs` (database clock); true when this caller got it. */
async function takeOverClaim(db: Db, key: ClaimKey, owner: string, timeoutMs: number): Promise<boolean> {
  const result = await db
    .updateTable('drive_folders')
    .set({ claimed_by: owner, claimed_at: sql<Date>`UTC_TIMESTAMP(3)` })
    .where('parent_id', '=', key.parentId)
    .where('name_hash', '=', key.nameHash)
    .where('status', '=', 'creating')
    .where(
      'claimed_at',
      '<',
      sql<Date>`UTC_TIMESTAMP(3) - INTERVAL ${Math.round(timeoutMs * 1000)} MICROSECOND`,
    )
    .executeTakeFirst();
  return result.numUpdatedRows === 1n;
}

/**
 * Forgets a folder that is gone from Drive (Drive answered 404 for it: deleted by hand), the folders
 * known under it, which went with it, and the folders above it, of which one may be what was deleted.
 * The next `ensureChildFolder` then makes again what is missing and adopts by name what still exists.
 */
export async function forgetFolderClaims(db: Db, folderId: string): Promise<void> {
  const forget = new Set([folderId]);
  // Up: the chain of parents, as far as Postroom made them (the root is not in the table).
  for (let id = folderId; ;) {
    const row = await db
      .selectFrom('drive_folders')
      .select('parent_id')
      .where('folder_id', '=', id)
      .executeTakeFirst();
    if (!row || forget.has(row.parent_id)) break;
    forget.add(row.parent_id);
    id = row.parent_id;
  }
  // Down: everything under the folder.
  for (let level = [folderId]; level.length > 0;) {
    const children = await db
      .selectFrom('drive_folders')
      .select('folder_id')
      .where('parent_id', 'in', level)
      .execute();
    level = children.map((c) => c.folder_id).filter((id) => !forget.has(id));
    for (const id of level) forget.add(id);
  }
  await db
    .deleteFrom('drive_folders')
    .where('folder_id', 'in', [...forget])
    .execute();
}
