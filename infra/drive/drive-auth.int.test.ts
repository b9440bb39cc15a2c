import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { auth, drive } from '@googleapis/drive';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/db.js';
import { FakeDrive, guardEgress } from '../../test/fake-drive.js';
import { guardDriveRequests } from './drive-auth.js';
import { createFileStore, type FileStoreDeps } from './drive-client.js';

const oauth = { clientId: 'client-1', clientSecret: 'secret-1', refreshToken: 'refresh-1' };
const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });

let fake: FakeDrive;
let db: TestDatabase;
let egress: ReturnType<typeof guardEgress>;
let dir: string;

beforeAll(async () => {
  egress = guardEgress();
  fake = await FakeDrive.start({
    basePath: '/api/',
    oauth,
    serviceAccountPublicKey: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  });
  db = await createTestDatabase('driveauth');
  dir = await mkdtemp(join(tmpdir(), 'postroom-drive-auth-'));
});

afterAll(async () => {
  await fake?.close();
  await db?.drop();
  egress?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const baseConfig: FileStoreDeps['config'] = {
  driveMode: 'local',
  DRIVE_API_URL: '',
  DRIVE_ROOT_FOLDER_ID: 'root',
  STORAGE_DIR: './unused',
};

function deps(config: Partial<FileStoreDeps['config']>): FileStoreDeps {
  return {
    config: { ...baseConfig, DRIVE_API_URL: fake.url, ...config },
    db: db.db,
    tokenUrl: fake.tokenUrl,
    retry: { attempts: 2, baseDelayMs: 5, maxDelayMs: 50 },
  };
}

const media = () => ({ mimeType: 'text/plain', body: Readable.from([Buffer.from('x')]) });

describe('the googleapis rootUrl trap', () => {
  it('is real: with a global rootUrl only, a media upload leaves for Google (stopped by the test guard)', async () => {
    const client = new auth.OAuth2();
    client.setCredentials({ access_token: 'fake-drive-token' });
    const api = drive({ version: 'v3', auth: client, rootUrl: fake.url, retry: false });
    await expect(api.files.create({ requestBody: { name: 'x' }, media: media() })).rejects.toThrow(
      /egress blocked/,
    );
    expect(egress.blocked).toEqual([
      expect.stringMatching(/^POST https:\/\/www\.googleapis\.com\/upload\/drive\/v3\/files\?/),
    ]);
    egress.blocked.length = 0;
    // And a metadata call loses rootUrl's path: it reaches the fake outside /api/.
    await expect(api.files.generateIds({})).rejects.toMatchObject({ status: 404 });
  });

  it('is closed by guardDriveRequests: the same call is refused before it leaves', async () => {
    const client = new auth.OAuth2();
    client.setCredentials({ access_token: 'fake-drive-token' });
    guardDriveRequests(client, { rootUrl: fake.url });
    const api = drive({ version: 'v3', auth: client, rootUrl: fake.url, retry: false });
    await expect(api.files.create({ requestBody: { name: 'x' }, media: media() })).rejects.toMatchObject({
      code: 'DRIVE.WRONG_HOST',
    });
    expect(egress.blocked).toEqual([]);
  });
});

describe('createFileStore', () => {
  it('picks local storage when no Google credentials are set', async () => {
    const store = await createFileStore({
      ...deps({}),
      config: { ...baseConfig, STORAGE_DIR: join(dir, 'local') },
    });
    expect(store.backend).toBe('local');
    expect(store.rootFolderId).toBe('.');
  });

  it('uses a ready access token as it is', async () => {
    const store = await createFileStore(
      deps({ driveMode: 'access-token', DRIVE_ACCESS_TOKEN: 'fake-drive-token' }),
    );
    expect(store.backend).toBe('drive');
    expect(await store.reserveFileId()).toMatch(/^1/);
  });

  it('trades an OAuth refresh token for an access token at the token endpoint', async () => {
    const before = fake.requests.length;
    const store = await createFileStore(
      deps({
        driveMode: 'oauth',
        DRIVE_CLIENT_ID: oauth.clientId,
        DRIVE_CLIENT_SECRET: oauth.clientSecret,
        DRIVE_REFRESH_TOKEN: oauth.refreshToken,
      }),
    );
    await store.reserveFileId();
    const log = fake.requests.slice(before);
    expect(log.map((r) => [r.method, r.path, r.status])).toEqual([
      ['POST', '/token', 200],
      ['GET', '/drive/v3/files/generateIds', 200],
    ]);
    expect(log[1]?.authorized).toBe(true);
  });

  it('reports a refused refresh token as a permanent DRIVE.AUTH_FAILED', async () => {
    const store = await createFileStore(
      deps({
        driveMode: 'oauth',
        DRIVE_CLIENT_ID: oauth.clientId,
        DRIVE_CLIENT_SECRET: 'wrong',
        DRIVE_REFRESH_TOKEN: 'x',
      }),
    );
    await expect(store.reserveFileId()).rejects.toMatchObject({
      code: 'DRIVE.AUTH_FAILED',
      retryable: false,
    });
  });

  it('signs a JWT with a service-account key (scope drive) and files with the token it gets', async () => {
    const keyFile = join(dir, 'sa.json');
    await writeFile(
      keyFile,
      JSON.stringify({
        type: 'service_account',
        project_id: 'postroom-test',
        private_key_id: 'k1',
        private_key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
        client_email: 'postroom@postroom-test.iam.gserviceaccount.com',
        client_id: '1',
        token_uri: 'https://oauth2.googleapis.com/token',
      }),
    );
    const store = await createFileStore(
      deps({ driveMode: 'service-account', GOOGLE_APPLICATION_CREDENTIALS: keyFile }),
    );
    const folderId = await store.ensureFolder(['service-account']);
    const fileId = await store.reserveFileId();
    const data = Buffer.from('from a robot');
    await store.upload({
      fileId,
      folderId,
      name: 'robot.txt',
      mimeType: 'text/plain',
      size: data.length,
      sha256: createHash('sha256').update(data).digest('hex'),
      open: () => Readable.from([data]),
    });
    expect(fake.content(fileId).toString()).toBe('from a robot');
    expect(fake.requests.filter((r) => r.path === '/token').at(-1)?.status).toBe(200);
  });

  it('sent nothing to Google', () => {
    expect(egress.blocked).toEqual([]);
  });
});
