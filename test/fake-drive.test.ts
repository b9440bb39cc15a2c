import { describe, expect, it } from 'vitest';
import { parseMultipart, parseQuery, pickFields, type QueryableFile } from './fake-drive-protocol.js';

const file = (over: Partial<QueryableFile> = {}): QueryableFile => ({
  name: "it's a\\b",
  mimeType: 'application/vnd.google-apps.folder',
  parents: ['P1'],
  trashed: false,
  appProperties: { sha256: 'abc' },
  ...over,
});

describe('fake Drive query language', () => {
  it('matches the terms Postroom sends, joined with and', () => {
    const q = parseQuery(
      "'P1' in parents and name = 'it\\'s a\\\\b' and mimeType = 'application/vnd.google-apps.folder' and trashed = false",
      'ROOT',
    );
    expect(q(file())).toBe(true);
    expect(q(file({ trashed: true }))).toBe(false);
    expect(q(file({ parents: ['P2'] }))).toBe(false);
    expect(q(file({ name: "it's a b" }))).toBe(false);
  });

  it('reads appProperties has { key and value } and the root alias', () => {
    const q = parseQuery("'root' in parents and appProperties has { key='sha256' and value='abc' }", 'ROOT');
    expect(q(file({ parents: ['ROOT'] }))).toBe(true);
    expect(q(file({ parents: ['ROOT'], appProperties: { sha256: 'abd' } }))).toBe(false);
  });

  it('refuses what it does not model instead of matching everything', () => {
    expect(() => parseQuery("name contains 'x'", 'ROOT')).toThrow(/unsupported operator/);
    expect(() => parseQuery("fullText = 'x'", 'ROOT')).toThrow(/unsupported term/);
    expect(() => parseQuery("name = 'x' or name = 'y'", 'ROOT')).toThrow(/expected and/);
    expect(() => parseQuery("name = 'x", 'ROOT')).toThrow(/cannot parse/);
  });
});

describe('fake Drive fields and multipart', () => {
  it('keeps only the fields asked for, nested ones included', () => {
    const obj = { kind: 'drive#fileList', nextPageToken: 't', files: [{ id: '1', name: 'a', size: '3' }] };
    expect(pickFields(obj, 'files(id,size),nextPageToken')).toEqual({
      files: [{ id: '1', size: '3' }],
      nextPageToken: 't',
    });
  });

  it('splits a multipart/related body into its parts', () => {
    const body = Buffer.from(
      '--b\r\ncontent-type: application/json\r\n\r\n{"a":1}\r\n--b\r\ncontent-type: x\r\n\r\nDATA\r\n--b--',
    );
    expect(parseMultipart(body, 'b')?.map(String)).toEqual(['{"a":1}', 'DATA']);
    expect(parseMultipart(Buffer.from('junk'), 'b')).toBeNull();
  });
});
