import { DeadLetterListQuery, EmailListQuery, IdParams } from './schemas.js';
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
