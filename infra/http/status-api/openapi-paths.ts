import { ContentQuery, DeadLetterListQuery, EmailListQuery, IdParams } from './schemas.js';
import { openApiParameters } from './validate.js';

/**
 * The status API's part of the OpenAPI 3.1 document. Parameters come from the same schemas that
 * validate requests; response bodies point at the component schemas of `schemas.ts`.
 */

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (description: string, schema: string) => ({
  description,
  content: { 'application/json': { schema: ref(schema) } },
});
const common = {
  '401': { $ref: '#/components/responses/Unauthorized' },
  '429': { $ref: '#/components/responses/TooManyRequests' },
  '500': { $ref: '#/components/responses/InternalError' },
  '503': { $ref: '#/components/responses/Unavailable' },
};
const badRequest = { '400': { $ref: '#/components/responses/BadRequest' } };
const notFound = { '404': { $ref: '#/components/responses/NotFound' } };
const idParam = openApiParameters(IdParams, 'path');

/** Paths of `/api/v1`, with bearer security (the document's default). */
export const statusApiPaths: Record<string, unknown> = {
  '/api/v1/emails': {
    get: {
      operationId: 'listEmails',
      tags: ['emails'],
      summary: 'Emails, newest first, with filters and cursor pagination',
      description:
        'Keyset pages on (recording time, id), newest first: mail arriving while you page lands before the first page, so ' +
        'following nextCursor never repeats or skips an email that existed when you started. Keep the same filters for every page.',
      parameters: openApiParameters(EmailListQuery, 'query'),
      responses: { '200': json('One page of emails', 'EmailList'), ...badRequest, ...common },
    },
  },
  '/api/v1/emails/{id}': {
    get: {
      operationId: 'getEmail',
      tags: ['emails'],
      summary: 'One email in full: attachments, calls, notifications and its timeline',
      parameters: idParam,
      responses: { '200': json('The email', 'Email'), ...badRequest, ...notFound, ...common },
    },
  },
  '/api/v1/attachments/{id}': {
    get: {
      operationId: 'getAttachment',
      tags: ['attachments'],
      summary: 'One attachment: analysis, image facts, Drive filing',
      parameters: idParam,
      responses: { '200': json('The attachment', 'Attachment'), ...badRequest, ...notFound, ...common },
    },
  },
  '/api/v1/attachments/{id}/thumbnail': {
    get: {
      operationId: 'getAttachmentThumbnail',
      tags: ['attachments'],
      summary: 'The WebP thumbnail of an image, or of the first page of a PDF (received or converted)',
      parameters: idParam,
      responses: {
        '200': {
          description: 'The thumbnail (at most 256 px on its longer side)',
          headers: { ETag: { schema: { type: 'string' }, description: 'SHA-256 of the thumbnail' } },
          content: { 'image/webp': { schema: { type: 'string', contentMediaType: 'image/webp' } } },
        },
        ...badRequest,
        '404': { $ref: '#/components/responses/NotFound' },
        ...common,
      },
    },
  },
  '/api/v1/attachments/{id}/converted': {
    get: {
      operationId: 'getAttachmentConverted',
      tags: ['attachments'],
      summary: 'The PDF an office document was converted to (when there is one)',
      parameters: idParam,
      responses: {
        '200': {
          description: 'The PDF, as an attachment named after the original (base name, .pdf)',
          headers: {
            ETag: { schema: { type: 'string' }, description: 'SHA-256 of the PDF' },
            'Content-Disposition': { schema: { type: 'string' }, description: 'attachment; filename=...' },
          },
          content: { 'application/pdf': { schema: { type: 'string', contentMediaType: 'application/pdf' } } },
        },
        ...badRequest,
        '404': { $ref: '#/components/responses/NotFound' },
        ...common,
      },
    },
  },
  '/api/v1/attachments/{id}/content': {
    get: {
      operationId: 'getAttachmentContent',
      tags: ['attachments'],
      summary: 'The bytes as received, streamed, with Range support',
      description:
        'Served from MySQL, or from the filed copy in Drive or STORAGE_DIR once retention (RETENTION_DAYS) dropped the bytes ' +
        'from MySQL; a filed copy is checked against the SHA-256 as it streams. Content-Type is the detected type, ' +
        'Content-Disposition is attachment with the safe name (filename* for non-ASCII names). A quarantined file answers 403 ' +
        'unless unsafe=true, and then only as application/octet-stream.',
      parameters: [...idParam, ...openApiParameters(ContentQuery, 'query')],
      responses: {
        '200': {
          description: 'The whole file',
          headers: {
            ETag: { schema: { type: 'string' }, description: 'SHA-256 of the bytes, quoted' },
            'Content-Disposition': { schema: { type: 'string' }, description: 'attachment; filename=...' },
            'Accept-Ranges': { schema: { type: 'string', const: 'bytes' } },
          },
          content: { '*/*': { schema: { type: 'string', format: 'binary' } } },
        },
        '206': {
          description: 'The one range asked for (several ranges get the whole file)',
          headers: { 'Content-Range': { schema: { type: 'string' }, description: 'bytes start-end/size' } },
          content: { '*/*': { schema: { type: 'string', format: 'binary' } } },
        },
        '304': { description: 'If-None-Match named the current ETag' },
        ...badRequest,
        '403': json('Quarantined (ask again with unsafe=true)', 'Error'),
        '404': { $ref: '#/components/responses/NotFound' },
        '410': json('The bytes are gone: dropped by retention and the filed copy deleted', 'Error'),
        '416': json('The range lies outside the file', 'Error'),
        ...common,
      },
    },
  },
  '/api/v1/stats': {
    get: {
      operationId: 'getStats',
      tags: ['stats'],
      summary: 'Counts per stage and state, queue depths, age of the oldest pending item',
      responses: { '200': json('Statistics', 'Stats'), ...common },
    },
  },
  '/api/v1/dead-letters': {
    get: {
      operationId: 'listDeadLetters',
      tags: ['dead-letters'],
      summary: 'Parked messages with their reason, newest first',
      parameters: openApiParameters(DeadLetterListQuery, 'query'),
      responses: { '200': json('One page of dead letters', 'DeadLetterList'), ...badRequest, ...common },
    },
  },
  '/api/v1/dead-letters/{id}/replay': {
    post: {
      operationId: 'replayDeadLetter',
      tags: ['dead-letters'],
      summary: 'Puts a parked message back on its queue as a fresh first attempt',
      parameters: idParam,
      responses: {
        '202': json('Requeued; the consumer takes it up shortly', 'ReplayResult'),
        ...badRequest,
        ...notFound,
        '409': { $ref: '#/components/responses/Conflict' },
        '413': { $ref: '#/components/responses/PayloadTooLarge' },
        ...common,
      },
    },
  },
};
