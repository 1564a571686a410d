import type { RequestHandler } from 'express';
import type { Authenticator } from '../auth/authenticate.js';
import { GatewayError } from '../core/errors.js';
import { BodyTooLargeError, readBody } from './body.js';

/** Bodies of the management routes (everything but Invoke) are small. */
const MANAGEMENT_BODY_LIMIT = 1024 * 1024;

/**
 * Authentication for routes other than Invoke (which reads its body itself, with its own
 * limits). A SigV4 signature covers the body, so the body is read here and kept in `req.body`.
 */
export function authenticateRequest(authenticator: Authenticator): RequestHandler {
  return async (req, _res, next) => {
    const principal = authenticator.precheck(
      typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined,
    );
    if (principal) return next();
    let body: Buffer;
    try {
      body = await readBody(req, MANAGEMENT_BODY_LIMIT);
    } catch (error) {
      if (error instanceof BodyTooLargeError)
        throw new GatewayError(
          'RequestTooLargeException',
          `Request must be smaller than ${MANAGEMENT_BODY_LIMIT} bytes.`,
        );
      throw error;
    }
    const query = req.originalUrl.indexOf('?');
    await authenticator.verify({
      method: req.method,
      rawPath: query < 0 ? req.originalUrl : req.originalUrl.slice(0, query),
      rawQuery: query < 0 ? '' : req.originalUrl.slice(query + 1),
      headers: req.headers,
      body,
    });
    req.body = body;
    next();
  };
}
