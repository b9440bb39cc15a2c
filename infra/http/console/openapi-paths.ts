/**
 * The console's part of the OpenAPI document: HTML pages for people, listed so that every route the
 * process serves is documented. They take the session cookie (not a bearer token); forms POST
 * `application/x-www-form-urlencoded` with the page's `_csrf` token.
 */

const html = (description: string) => ({
  description,
  content: { 'text/html': { schema: { type: 'string' } } },
});
const seeOther = (description: string) => ({
  description,
  headers: { Location: { description: 'Where to go next', schema: { type: 'string' } } },
});
const session = [{ consoleSession: [] }];
const form = (fields: Record<string, string>, required: string[]) => ({
  required: true,
  content: {
    'application/x-www-form-urlencoded': {
      schema: {
        type: 'object',
        required,
        properties: Object.fromEntries(
          Object.entries(fields).map(([k, description]) => [k, { type: 'string', description }]),
        ),
      },
    },
  },
});
const idParam = [{ name: 'id', in: 'path', required: true, schema: { type: 'string', format: 'uuid' } }];
const page = (summary: string, extra: Record<string, unknown> = {}) => ({
  get: {
    tags: ['console'],
    summary,
    security: session,
    ...extra,
    responses: {
      '200': html(summary),
      '303': seeOther('Not signed in: to /console/sign-in?next=<this page>'),
    },
  },
});

/** Paths of `/console` (and `/`, which redirects there). */
export const consolePaths: Record<string, unknown> = {
  '/': {
    get: {
      tags: ['console'],
      summary: 'Redirects to the operator console',
      security: [],
      responses: { '302': seeOther('To /console') },
    },
  },
  '/console': page('Mail, newest first, with filters (status, from, q) and keyset pages (cursor)', {
    parameters: ['status', 'from', 'q', 'cursor'].map((name) => ({
      name,
      in: 'query',
      schema: { type: 'string' },
    })),
  }),
  '/console/emails/{id}': page('One email: attachments, hook calls, notifications, timeline', {
    parameters: idParam,
  }),
  '/console/attachments/{id}/content': page(
    'The bytes of an accepted attachment, as a download (403 for quarantined and rejected ones)',
    { parameters: idParam },
  ),
  '/console/attachments/{id}/thumbnail': page('An image attachment’s WebP thumbnail', {
    parameters: idParam,
  }),
  '/console/dead-letters': page(
    'Dead letters with their reason and a Replay button (state=all adds replayed ones)',
  ),
  '/console/jobs': page(
    'Scheduled jobs: schedule, time zone, next due time, last runs (outcome, detail) and a Run now button',
    {
      parameters: ['queued', 'busy', 'unknown'].map((name) => ({
        name,
        in: 'query',
        description: 'A job name: the notice after Run now',
        schema: { type: 'string' },
      })),
    },
  ),
  '/console/stats': page('Counts per stage, queue depths, oldest pending item'),
  '/console/live': {
    get: {
      tags: ['console'],
      summary: 'The processing count the mail page keeps live',
      security: session,
      responses: {
        '200': {
          description: 'Emails still processing',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: { processing: { type: 'integer' }, at: { type: 'string', format: 'date-time' } },
              },
            },
          },
        },
      },
    },
  },
  '/console/sign-in': {
    get: {
      tags: ['console'],
      summary: 'The sign-in form (sets the pre-session cookie its CSRF token is bound to)',
      security: [],
      responses: { '200': html('The form') },
    },
    post: {
      tags: ['console'],
      summary: 'Signs in with an API token or a JWT; failed attempts are rate-limited per client address',
      security: [],
      requestBody: form(
        { token: 'API token or JWT', _csrf: 'The form’s token', next: 'Console path to go to afterwards' },
        ['token', '_csrf'],
      ),
      responses: {
        '303': seeOther('Signed in (sets the HttpOnly, SameSite=Strict session cookie)'),
        '401': html('Wrong token'),
        '403': html('Missing or wrong CSRF token'),
        '429': html('Too many failed sign-ins from this address'),
      },
    },
  },
  '/console/sign-out': {
    post: {
      tags: ['console'],
      summary: 'Signs out (clears the session cookie)',
      security: session,
      requestBody: form({ _csrf: 'The page’s token' }, ['_csrf']),
      responses: { '303': seeOther('To the sign-in page'), '403': html('Missing or wrong CSRF token') },
    },
  },
  '/console/dead-letters/{id}/replay': {
    post: {
      tags: ['console'],
      summary: 'Replays a dead letter (the same code as POST /api/v1/dead-letters/{id}/replay)',
      security: session,
      parameters: idParam,
      requestBody: form({ _csrf: 'The page’s token' }, ['_csrf']),
      responses: {
        '303': seeOther('Back to the dead letters, with the outcome'),
        '403': html('Missing or wrong CSRF token'),
      },
    },
  },
  '/console/jobs/{name}/run': {
    post: {
      tags: ['console'],
      summary: 'Runs a job now (the same code as POST /api/v1/jobs/{name}/run)',
      security: session,
      parameters: [{ name: 'name', in: 'path', required: true, schema: { type: 'string' } }],
      requestBody: form({ _csrf: 'The page’s token' }, ['_csrf']),
      responses: {
        '303': seeOther('Back to the jobs, with the outcome: queued, already running, or no such job'),
        '403': html('Missing or wrong CSRF token'),
        '404': html('Not a job name'),
      },
    },
  },
};
