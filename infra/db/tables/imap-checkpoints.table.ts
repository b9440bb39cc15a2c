/** How far the poller got in one mailbox. */
export interface ImapCheckpointsTable {
  /** `user@host`. */
  account: string;
  mailbox: string;
  /** UIDVALIDITY as a decimal string (it is a 32-bit unsigned value, BigInt in imapflow). */
  uid_validity: string;
  /** Highest UID whose email is committed. */
  last_uid: number;
  updated_at: Date;
}
