import type { ErrorRequestHandler } from 'express';
import type { Logger } from 'pino';
import { GatewayError } from '../core/errors.js';
import { writeAnswer, type InvokeAnswer } from './answer.js';

/** A service error the way Lambda answers it: `x-amzn-ErrorType` header and a `{Type, message, Message}` body. */
export function serviceErrorAnswer(error: GatewayError, requestId: string): InvokeAnswer {
  const body = JSON.stringify({
    Type: error.type,
    message: error.message,
    Message: error.message,
    ...error.extra,
  });
  const headers: Record<string, string> = {
    'x-amzn-RequestId': requestId,
    'x-amzn-ErrorType': error.code,
  };
  if (error.retryAfterSeconds !== undefined) headers['Retry-After'] = String(error.retryAfterSeconds);
  return { status: error.status, headers, body: Buffer.from(body), json: true };
}

/**
 * Turns anything thrown by a route into a Lambda-shaped answer. Only GatewayErrors speak to the
 * caller; anything else is logged and becomes a bare 500 ServiceException, so internals never leak.
 */
export function errorAnswer(logger: Logger, error: unknown, requestId: string, path: string): InvokeAnswer {
  if (error instanceof GatewayError) {
    if (error.status >= 500)
      logger.warn({ code: error.code, message: error.message, requestId, path }, 'call failed');
    return serviceErrorAnswer(error, requestId);
  }
  // Express's own 4xx, e.g. a path segment that is not valid percent-encoding.
  const status = (error as { status?: unknown })?.status;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return serviceErrorAnswer(
      new GatewayError('InvalidRequestContentException', 'The request could not be read.'),
      requestId,
    );
  }
  logger.error({ err: error, requestId, path }, 'unexpected error');
  return serviceErrorAnswer(new GatewayError('ServiceException', 'An internal error occurred.'), requestId);
}

/** Express's error handler: the answer of `errorAnswer`, unless the answer had already started. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const requestId = String(res.locals.requestId ?? '');
    if (res.headersSent) {
      logger.warn({ err: error, requestId }, 'error after the answer started; closing the connection');
      res.destroy();
      return;
    }
    writeAnswer(res, errorAnswer(logger, error, requestId, req.path));
  };
}
