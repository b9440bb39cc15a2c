import type { ErrorRequestHandler, RequestHandler } from 'express';
import { PostroomError, ValidationError } from '../errors.js';

/** An error answered with its HTTP status and a stable code. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** The JSON body of every error answer: `{ error: { code, message } }`, never a stack trace. */
export function errorBody(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

/** 404 for any route nobody answered. */
export const notFound: RequestHandler = (req, res) => {
  res.status(404).json(errorBody('NOT_FOUND', `No route ${req.method} ${req.path}`));
};

/** Turns any error into a JSON answer; 500s are logged with the request id, their details kept out of the answer. */
export const errorHandler: ErrorRequestHandler = (err: unknown, req, res, _next) => {
  const e = err as { status?: number; statusCode?: number; type?: string; message?: string };
  if (err instanceof HttpError) {
    res.status(err.status).json(errorBody(err.code, err.message));
    return;
  }
  if (err instanceof ValidationError) {
    res.status(400).json(errorBody(err.code, err.message));
    return;
  }
  if (err instanceof PostroomError && err.code.endsWith('NOT_FOUND')) {
    res.status(404).json(errorBody(err.code, err.message));
    return;
  }
  if (err instanceof PostroomError && !err.retryable) {
    res.status(409).json(errorBody(err.code, err.message));
    return;
  }
  // body-parser errors carry a status and a type.
  const status = e?.status ?? e?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code =
      e.type === 'entity.too.large'
        ? 'PAYLOAD_TOO_LARGE'
        : e.type === 'entity.parse.failed'
          ? 'INVALID_JSON'
          : 'BAD_REQUEST';
    res.status(status).json(errorBody(code, e.message ?? 'Bad request'));
    return;
  }
  req.log?.error({ err }, 'request failed');
  const retryable = err instanceof PostroomError && err.retryable;
  res
    .status(retryable ? 503 : 500)
    .json(
      errorBody(
        retryable ? 'UNAVAILABLE' : 'INTERNAL',
        retryable ? 'A dependency is unavailable; try again' : 'Internal error',
      ),
    );
};
