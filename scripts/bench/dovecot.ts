import type { ImapFlow } from 'imapflow';
import { launchDovecot } from '../throwaway-dovecot.js';

/** The benchmark's Dovecot: a throwaway server (`scripts/throwaway-dovecot.ts`) with what it uses. */
export interface BenchDovecot {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Opens a connected client (log it out when done). */
  client(): Promise<ImapFlow>;
  /** Creates a mailbox (no error when it exists). */
  createMailbox(mailbox: string): Promise<void>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

/** Starts a Dovecot of its own; throws when it is not installed or does not come up. */
export async function startBenchDovecot(): Promise<BenchDovecot> {
  const server = await launchDovecot({ user: 'bench', label: 'bench-dovecot' });
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    client: () => server.client(),
    async createMailbox(mailbox) {
      const c = await server.client();
      try {
        await c.mailboxCreate(mailbox).catch(() => undefined);
      } finally {
        await c.logout().catch(() => c.close());
      }
    },
    stop: () => server.stop(),
  };
}
