/**
 * One Drive folder Postroom made (or adopted) under a parent, and the claim that serializes its
 * creation across processes: Drive allows many folders with one name, so the unique key here is what
 * makes "create it if missing" happen once.
 */
export interface DriveFoldersTable {
  /** Drive id of the parent folder (the configured root, possibly the `root` alias, at the first level). */
  parent_id: string;
  /** Hex SHA-256 of the exact name: the key stays case- and accent-sensitive, as Drive names are. */
  name_hash: string;
  /** The folder name as created. */
  name: string;
  /** Drive id reserved with files.generateIds when the claim was made; the folder is created with it. */
  folder_id: string;
  /** `creating` while the claim holder makes the folder, `ready` once it exists in Drive. */
  status: string;
  /** Who holds the claim (host, pid and a random part), for diagnostics and takeovers. */
  claimed_by: string;
  /** When the claim was made or last taken over (UTC); an old `creating` claim may be taken over. */
  claimed_at: Date;
  /** When the folder was known to exist. */
  ready_at: Date | null;
}

/** Where the Drive intake left off reading the changes of its folder (migration `20261203T0810-files-back`). */
export interface DriveIntakeStateTable {
  /** `DRIVE_INTAKE_FOLDER_ID`. */
  folder_id: string;
  /** The Drive changes page token to read from next. */
  page_token: string;
  updated_at: Date;
}
