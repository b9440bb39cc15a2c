import type { Readable } from 'node:stream';
import { drive, type drive_v3 } from '@googleapis/drive';
import { guardDriveRequests, type DriveAuthClient } from '../../infra/drive/drive-auth.js';
import { DEFAULT_RETRY_POLICY, withDriveRetry, type RetryPolicy } from '../../infra/drive/drive-errors.js';
import { GOOGLE_API_ROOT } from '../../infra/drive/drive-file-store.js';
import type { Logger } from '../../infra/logger.js';

/** What the intake reads of a file. */
export interface IntakeFile {
  id: string;
  name: string;
  mimeType: string;
  parents: string[];
  trashed: boolean;
  /** Bytes (absent for Google Docs files). */
  size: number | null;
  sha256Checksum: string | null;
  /** Drive's version: bumped by every change, so (id, version) names one state of the file. */
  version: string;
  /** Who changed it last, when Drive says. */
  modifiedBy: string | null;
}

/** One page of changes. */
export interface ChangePage {
  /** Files changed (removed ones left out). */
  files: IntakeFile[];
  /** Read the next page with this token, or null when this was the last. */
  nextPageToken: string | null;
  /** With the last page: where the next poll starts. */
  newStartPageToken: string | null;
}

const FILE_FIELDS =
  'id,name,mimeType,parents,trashed,size,sha256Checksum,version,lastModifyingUser(emailAddress)';

function toIntakeFile(f: drive_v3.Schema$File): IntakeFile {
  return {
    id: f.id ?? '',
    name: f.name ?? 'untitled',
    mimeType: f.mimeType ?? 'application/octet-stream',
    parents: f.parents ?? [],
    trashed: f.trashed === true,
    size: f.size == null ? null : Number(f.size),
    sha256Checksum: f.sha256Checksum ?? null,
    version: String(f.version ?? '0'),
    modifiedBy: f.lastModifyingUser?.emailAddress ?? null,
  };
}

/**
 * The Drive v3 calls of the intake, through `@googleapis/drive` with the same rules as filing:
 * `rootUrl` on every call, the client's own retries off and `withDriveRetry` instead, shared drives
 * supported. Media comes back as streams.
 */
export class DriveIntakeApi {
  private readonly api: drive_v3.Drive;
  private readonly call: { rootUrl: string };
  private readonly policy: RetryPolicy;

  constructor(options: {
    auth: DriveAuthClient;
    rootUrl?: string;
    retry?: Partial<RetryPolicy>;
    log?: Logger;
  }) {
    const rootUrl = new URL(options.rootUrl ?? GOOGLE_API_ROOT).href.replace(/\/*$/, '/');
    this.call = { rootUrl };
    this.api = drive({ version: 'v3', auth: options.auth, rootUrl, retry: false });
    guardDriveRequests(options.auth, { rootUrl });
    this.policy = { ...DEFAULT_RETRY_POLICY, ...options.retry };
  }

  /** changes.getStartPageToken: where changes made from now on begin. */
  async startPageToken(): Promise<string> {
    const res = await withDriveRetry('get start page token', {}, this.policy, () =>
      this.api.changes.getStartPageToken({ supportsAllDrives: true }, this.call),
    );
    return res.data.startPageToken ?? '';
  }

  /** changes.list from `pageToken`. */
  async changes(pageToken: string): Promise<ChangePage> {
    const res = await withDriveRetry('list changes', {}, this.policy, () =>
      this.api.changes.list(
        {
          pageToken,
          pageSize: 100,
          includeRemoved: false,
          spaces: 'drive',
          supportsAllDrives: true,
          includeItemsFromAllDrives: true,
          fields: `nextPageToken,newStartPageToken,changes(fileId,removed,file(${FILE_FIELDS}))`,
        },
        this.call,
      ),
    );
    return {
      files: (res.data.changes ?? []).flatMap((c) => (c.removed || !c.file ? [] : [toIntakeFile(c.file)])),
      nextPageToken: res.data.nextPageToken ?? null,
      newStartPageToken: res.data.newStartPageToken ?? null,
    };
  }

  /** Every file now in `folderId` (not trashed). */
  async listFolder(folderId: string): Promise<IntakeFile[]> {
    const out: IntakeFile[] = [];
    let pageToken: string | undefined;
    do {
      const res = await withDriveRetry('list intake folder', { folderId }, this.policy, () =>
        this.api.files.list(
          {
            q: `'${folderId.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}' in parents and trashed = false`,
            fields: `nextPageToken,files(${FILE_FIELDS})`,
            pageSize: 100,
            pageToken,
            spaces: 'drive',
            supportsAllDrives: true,
            includeItemsFromAllDrives: true,
          },
          this.call,
        ),
      );
      out.push(...(res.data.files ?? []).map(toIntakeFile));
      pageToken = res.data.nextPageToken ?? undefined;
    } while (pageToken);
    return out;
  }

  /** files.get with alt=media, streamed. */
  async download(fileId: string): Promise<Readable> {
    const res = await withDriveRetry('download intake file', { fileId }, this.policy, () =>
      this.api.files.get(
        { fileId, alt: 'media', supportsAllDrives: true },
        { ...this.call, responseType: 'stream' },
      ),
    );
    return res.data as unknown as Readable;
  }

  /** files.export of a Google Docs file to `mimeType`, streamed (Drive caps exports at 10 MB). */
  async export(fileId: string, mimeType: string): Promise<Readable> {
    const res = await withDriveRetry('export intake file', { fileId }, this.policy, () =>
      this.api.files.export({ fileId, mimeType }, { ...this.call, responseType: 'stream' }),
    );
    return res.data as unknown as Readable;
  }

  /** Moves a file to the trash (files.update trashed=true). */
  async trash(fileId: string): Promise<void> {
    await withDriveRetry('trash intake file', { fileId }, this.policy, () =>
      this.api.files.update(
        { fileId, requestBody: { trashed: true }, fields: 'id', supportsAllDrives: true },
        this.call,
      ),
    );
  }
}
