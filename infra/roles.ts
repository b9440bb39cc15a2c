import type { Router } from 'express';
import type { Pool } from 'mysql2';
import type { BlobStore } from './blobs/blob-store.js';
import type { Broker } from './broker/connection.js';
import type { Config } from './config.js';
import type { Db } from './db/database.js';
import type { ReadinessCheck } from './http/app.js';
import type { Logger } from './logger.js';

/** What every role gets when it starts: the shared parts of the process. */
export interface RoleContext {
  config: Config;
  log: Logger;
  db: Db;
  pool: Pool;
  broker: Broker;
  blobs: BlobStore;
}

/** What a started role gives back to the process. */
export interface RoleHandle {
  /** Stops taking new work and finishes what is in flight. */
  stop(): Promise<void>;
  /** Extra /readyz checks (an IMAP connection, say). */
  readiness?: ReadinessCheck[];
  /** HTTP routes the role serves (the status API, the Telegram webhook). */
  routers?: { path: string; router: Router }[];
  /** What the role adds to the OpenAPI document (paths and component schemas). */
  openapi?: { paths?: Record<string, unknown>; schemas?: Record<string, unknown> };
}

/** One RoleHandle for several (null ones skipped): how role `telegram` runs the webhook and the bot. */
export function combineRoles(...handles: (RoleHandle | null)[]): RoleHandle | null {
  const hs = handles.filter((h): h is RoleHandle => h !== null);
  if (hs.length === 0) return null;
  return {
    stop: async () => void (await Promise.all(hs.map((h) => h.stop()))),
    readiness: hs.flatMap((h) => h.readiness ?? []),
    routers: hs.flatMap((h) => h.routers ?? []),
    openapi: {
      paths: Object.assign({}, ...hs.map((h) => h.openapi?.paths ?? {})) as Record<string, unknown>,
      schemas: Object.assign({}, ...hs.map((h) => h.openapi?.schemas ?? {})) as Record<string, unknown>,
    },
  };
}
