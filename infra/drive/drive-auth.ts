import { auth } from '@googleapis/drive';
import type { Config } from '../config.js';
import { PermanentError } from '../errors.js';

/** Full Drive access: what a service account filing into a shared drive needs. */
const DRIVE_SCOPE = 'https://www.googleapis.com/auth/drive';
/** Google's OAuth 2.0 token endpoint, used by refresh tokens and service-account assertions alike. */
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

/**
 * An authenticated HTTP client from google-auth-library (as re-exported by `@googleapis/drive`):
 * `OAuth2Client` or its service-account subclass `JWT`. It adds the bearer token to each request and
 * refreshes it when it can.
 */
export type DriveAuthClient = InstanceType<typeof auth.OAuth2>;

/** The configuration `createDriveAuth` reads. */
export type DriveAuthConfig = Pick<
  Config,
  | 'driveMode'
  | 'GOOGLE_APPLICATION_CREDENTIALS'
  | 'DRIVE_CLIENT_ID'
  | 'DRIVE_CLIENT_SECRET'
  | 'DRIVE_REFRESH_TOKEN'
  | 'DRIVE_ACCESS_TOKEN'
>;

/**
 * Builds the auth client for the configured mode: a service-account key file (scope `drive`), OAuth
 * user credentials (client id, secret and refresh token, granted `drive.file`), or a ready access token
 * (never refreshed: when it expires, calls fail with `DRIVE.UNAUTHORIZED`). Makes no request.
 */
export async function createDriveAuth(config: DriveAuthConfig): Promise<DriveAuthClient> {
  switch (config.driveMode) {
    case 'service-account': {
      const keyFilename = config.GOOGLE_APPLICATION_CREDENTIALS;
      const client = await new auth.GoogleAuth({ keyFilename, scopes: [DRIVE_SCOPE] }).getClient();
      // A service-account key gives a JWT client, an authorized-user file a UserRefreshClient: both OAuth2.
      if (!(client instanceof auth.OAuth2))
        throw new PermanentError(
          'DRIVE.BAD_CREDENTIALS',
          `${keyFilename} is not a service-account or user key file`,
        );
      return client;
    }
    case 'oauth': {
      const client = new auth.OAuth2({
        clientId: config.DRIVE_CLIENT_ID,
        clientSecret: config.DRIVE_CLIENT_SECRET,
      });
      client.setCredentials({ refresh_token: config.DRIVE_REFRESH_TOKEN ?? null });
      return client;
    }
    case 'access-token': {
      const client = new auth.OAuth2();
      client.setCredentials({ access_token: config.DRIVE_ACCESS_TOKEN ?? null });
      return client;
    }
    case 'local':
      throw new PermanentError(
        'DRIVE.NOT_CONFIGURED',
        'No Google credentials are configured: use local storage',
      );
  }
}

/** Options of `guardDriveRequests`. */
export interface DriveRequestGuardOptions {
  /** The Drive API root every Drive request must go to (`DRIVE_API_URL`), ending in `/`. */
  rootUrl: string;
  /** Sends token requests here instead of Google's token endpoint (tests, token proxies). */
  tokenUrl?: string;
}

/**
 * Checks every request the auth client sends, whoever built it (the googleapis client, our resumable
 * upload code, the token refresh): a Drive API request (`/drive/v3/`, `/upload/drive/v3/`) that is not
 * under `rootUrl` is refused with `DRIVE.WRONG_HOST` before it leaves, so a call that missed the
 * per-call `rootUrl` (media uploads go to Google's default host otherwise) fails loudly instead of
 * reaching Google. With `tokenUrl`, token requests are redirected there.
 */
export function guardDriveRequests(client: DriveAuthClient, options: DriveRequestGuardOptions): void {
  const root = new URL(options.rootUrl);
  client.transporter.interceptors.request.add({
    resolved: async (config) => {
      const url = new URL(String(config.url));
      if (options.tokenUrl && url.href.split('?')[0] === GOOGLE_TOKEN_URL) {
        config.url = new URL(options.tokenUrl);
        return config;
      }
      const driveCall = /\/(upload\/)?drive\/v3\//.test(url.pathname);
      const underRoot = url.origin === root.origin && url.pathname.startsWith(root.pathname);
      if (driveCall && !underRoot)
        throw new PermanentError(
          'DRIVE.WRONG_HOST',
          `Refused a Drive request to ${url.origin}${url.pathname}: every Drive call must go to ${root.origin}${root.pathname} (DRIVE_API_URL)`,
        );
      return config;
    },
  });
}
