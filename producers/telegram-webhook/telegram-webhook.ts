import { createHash, timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import express, { type ErrorRequestHandler, type RequestHandler, type Router } from 'express';
import { ajv, formatErrors } from '../../contracts/index.js';
import { createEvent } from '../../infra/broker/events.js';
import type { Db } from '../../infra/db/database.js';
import { acceptTelegramUpdate } from '../../infra/db/repositories/telegram.repository.js';
import { PostroomError, RetryableError } from '../../infra/errors.js';
import { errorBody } from '../../infra/http/errors.js';
import { telegramWebhookTotal } from '../../infra/telegram/telegram-metrics.js';

/** Header Telegram puts the `secret_token` of `setWebhook` in. */
export const SECRET_HEADER = 'X-Telegram-Bot-Api-Secret-Token';

/** Largest webhook body accepted. Telegram's updates are a few KB; 256 KB leaves room for long texts. */
export const WEBHOOK_BODY_LIMIT = '256kb';

/** The part of an Update the webhook checks: an object with a non-negative integer `update_id`. */
export const TelegramUpdateBody = Type.Object(
  { update_id: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }) },
  { additionalProperties: true, description: 'A Bot API Update (only update_id is checked here)' },
);
const validateUpdate = ajv.compile(TelegramUpdateBody);

/** What the webhook needs. */
export interface TelegramWebhookDeps {
  db: Db;
  /** `TELEGRAM_WEBHOOK_SECRET`. */
  secret: string;
  /** The bot's id (update ids are counted per bot). */
  botId: number;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * `POST /webhook` (mounted at `/telegram`): checks the secret header in constant time (401 and nothing
 * published otherwise), then the body (a JSON Update, at most {@link WEBHOOK_BODY_LIMIT}), and commits
 * the update id and its `telegram.update` event in one transaction. A repeated update id answers 200
 * and publishes nothing. The answer goes out right after the commit; the work happens in consumers.
 */
export function createTelegramWebhookRouter(deps: TelegramWebhookDeps): Router {
  const router = express.Router();
  // Both sides hashed first: timingSafeEqual needs equal lengths, and the length of the secret must not leak.
  const expected = digest(deps.secret);

  const checkSecret: RequestHandler = (req, res, next) => {
    const given = req.get(SECRET_HEADER) ?? '';
    if (!timingSafeEqual(digest(given), expected)) {
      telegramWebhookTotal.inc({ result: 'unauthorized' });
      req.log.warn({ hasHeader: given !== '' }, 'Telegram webhook call without the right secret');
      res.status(401).json(errorBody('UNAUTHORIZED', `Missing or wrong ${SECRET_HEADER}`));
      return;
    }
    next();
  };

  const accept: RequestHandler = async (req, res) => {
    const body: unknown = req.body;
    if (!validateUpdate(body)) {
      telegramWebhookTotal.inc({ result: 'invalid' });
      const problems =
        body === undefined ? ['/: a JSON body is required'] : formatErrors(validateUpdate.errors);
      res.status(400).json(errorBody('INVALID_UPDATE', `Not a Telegram Update: ${problems.join('; ')}`));
      return;
    }
    const updateId = body.update_id;
    const event = createEvent(
      'telegram.update',
      { updateId, update: body },
      { correlationId: `telegram-update-${updateId}` },
    );
    let result: 'published' | 'duplicate';
    try {
      result = await acceptTelegramUpdate(deps.db, deps.botId, event);
    } catch (err) {
      telegramWebhookTotal.inc({ result: 'error' });
      // A 503 makes Telegram send the update again later.
      throw err instanceof PostroomError
        ? err
        : new RetryableError('TELEGRAM.WEBHOOK_UNAVAILABLE', `Could not record Telegram update ${updateId}`, {
            cause: err,
          });
    }
    telegramWebhookTotal.inc({ result });
    req.log.info(
      { updateId, eventId: result === 'published' ? event.id : undefined, result },
      'Telegram update accepted',
    );
    res.status(200).json({ ok: true, duplicate: result === 'duplicate' });
  };

  // Body-parser failures (not JSON, too large) are counted, then answered by the app's error handler.
  const countParseErrors: ErrorRequestHandler = (err, _req, _res, next) => {
    if (typeof (err as { type?: unknown } | null)?.type === 'string')
      telegramWebhookTotal.inc({ result: 'invalid' });
    next(err);
  };

  router.post('/webhook', checkSecret, express.json({ limit: WEBHOOK_BODY_LIMIT, strict: true }), accept);
  router.use(countParseErrors);
  return router;
}
