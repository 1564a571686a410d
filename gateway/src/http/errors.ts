import type { ServerResponse } from 'node:http';
import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import { GatewayError } from '../core/errors.js';

/** Writes a service error the way Lambda does: `x-amzn-ErrorType` header and a `{Type, message, Message}` body. */
export function sendServiceError(res: ServerResponse, error: GatewayError, requestId: string): void {
  const body = JSON.stringify({
    Type: error.type,
    message: error.message,
    Message: error.message,
    ...error.extra,
  });
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'x-amzn-RequestId': requestId,
    'x-amzn-ErrorType': error.code,
  };
  if (error.retryAfterSeconds !== undefined) headers['Retry-After'] = error.retryAfterSeconds;
  res.writeHead(error.status, headers).end(body);
}

/**
 * Turns anything thrown by a route into a Lambda-shaped answer. Only GatewayErrors speak to the
 * caller; anything else is logged and becomes a bare 500 ServiceException, so internals never leak.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    answerError(logger, error, res, String(res.locals.requestId ?? ''), req.path);
  };
}

/** The error handler's work, for routes served outside Express too (the Invoke fast path). */
export function answerError(
  logger: Logger,
  error: unknown,
  res: ServerResponse,
  requestId: string,
  path: string,
): void {
  if (res.headersSent) {
    logger.warn({ err: error, requestId }, 'error after the answer started; closing the connection');
    res.destroy();
    return;
  }
  if (error instanceof GatewayError) {
    if (error.status >= 500)
      logger.warn({ code: error.code, message: error.message, requestId, path }, 'call failed');
    sendServiceError(res, error, requestId);
    return;
  }
  // Express's own 4xx, e.g. a path segment that is not valid percent-encoding.
  const status = (error as { status?: unknown })?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    sendServiceError(
      res,
      new GatewayError('InvalidRequestContentException', 'The request could not be read.'),
      requestId,
    );
    return;
  }
  logger.error({ err: error, requestId, path }, 'unexpected error');
  sendServiceError(res, new GatewayError('ServiceException', 'An internal error occurred.'), requestId);
}
