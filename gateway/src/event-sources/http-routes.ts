import type { ServerResponse } from 'node:http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { RESERVED_HTTP_PREFIXES, type HttpSource, type PushMapping } from '@hearth/api';
import type { Authenticator } from '../auth/authenticate.js';
import { GatewayError } from '../core/errors.js';
import { BodyTooLargeError, readBody } from '../http/body.js';
import { callerGone } from '../http/invoke-routes.js';
import type { LocalInvoker } from '../invoke/local-invoker.js';
import { toHttpApiEvent } from './http-event.js';
import {
  answerFromError,
  answerFromResult,
  INTERNAL_SERVER_ERROR,
  type HttpAnswer,
} from './http-response.js';
import type { DeliveryOutcome, PushSourceMetrics } from './metrics.js';
import type { PushMappingCache } from './push-mappings.js';

export type HttpRoute = PushMapping & { http: HttpSource };

/**
 * The route a request takes: among enabled HTTP mappings whose method is the request's (or ANY),
 * the longest path prefix the path is at or under on a segment boundary (`/shop` takes `/shop`
 * and `/shop/cart`, not `/shopping`); at equal prefixes a named method beats ANY. Paths the
 * gateway serves itself never match.
 */
export function matchHttpRoute(
  routes: readonly HttpRoute[],
  method: string,
  rawPath: string,
): HttpRoute | undefined {
  if (RESERVED_HTTP_PREFIXES.some((reserved) => `${rawPath}/`.startsWith(reserved))) return undefined;
  let best: HttpRoute | undefined;
  let bestLength = -1;
  for (const route of routes) {
    if (!route.enabled) continue;
    if (route.http.method !== 'ANY' && route.http.method !== method) continue;
    const prefix = route.http.pathPrefix.replace(/\/+$/, '');
    if (prefix !== '' && rawPath !== prefix && !rawPath.startsWith(`${prefix}/`)) continue;
    const better =
      prefix.length > bestLength ||
      (prefix.length === bestLength && best?.http.method === 'ANY' && route.http.method !== 'ANY');
    if (better) {
      best = route;
      bestLength = prefix.length;
    }
  }
  return best;
}

export interface HttpRoutesOptions {
  mappings: PushMappingCache;
  invoker: LocalInvoker;
  authenticator: Authenticator;
  metrics: PushSourceMetrics;
  /** The largest request body, and the largest event built from it (Lambda's sync payload limit). */
  syncPayloadBytes: number;
  accountId: string;
  logger: Logger;
}

/**
 * Serves HTTP routes: a request no other gateway route took is matched against the HTTP
 * mappings and, when one takes it, runs the function synchronously through the invoker (the same
 * admission, routing and metrics as an Invoke) with a payload 2.0 event. Anything else goes on
 * to the next handler (the 404).
 */
export function httpRoutes(options: HttpRoutesOptions): RequestHandler {
  const { mappings, invoker, authenticator, metrics, logger } = options;
  let routes: HttpRoute[] = [];
  const rebuild = () => {
    routes = mappings.list().filter((m): m is HttpRoute => m.http !== undefined);
  };
  rebuild();
  mappings.onChange(rebuild);

  /** Checks the caller against the gateway's keys; the body is read here either way (a SigV4 signature covers it). */
  async function authenticatedBody(
    req: Request,
    route: HttpRoute,
    rawPath: string,
    rawQuery: string,
  ): Promise<Buffer> {
    const authorization =
      typeof req.headers.authorization === 'string' ? req.headers.authorization : undefined;
    const settled = route.http.auth === 'none' || authenticator.precheck(authorization) !== undefined;
    let body: Buffer;
    try {
      body = await readBody(req, options.syncPayloadBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) throw tooLarge('body', options.syncPayloadBytes);
      throw error;
    }
    if (!settled) {
      await authenticator.verify({ method: req.method, rawPath, rawQuery, headers: req.headers, body });
    }
    return body;
  }

  async function serve(req: Request, res: Response, route: HttpRoute): Promise<DeliveryOutcome> {
    const requestId = String(res.locals.requestId);
    const url = req.originalUrl;
    const query = url.indexOf('?');
    const rawPath = query < 0 ? url : url.slice(0, query);
    const rawQueryString = query < 0 ? '' : url.slice(query + 1);
    const receivedAt = new Date();
    try {
      const body = await authenticatedBody(req, route, rawPath, rawQueryString);
      const event = toHttpApiEvent(
        {
          method: req.method,
          rawPath,
          rawQueryString,
          rawHeaders: req.rawHeaders,
          body,
          protocol: `HTTP/${req.httpVersion}`,
          sourceIp: (req.socket.remoteAddress ?? '').replace(/^::ffff:/, ''),
          requestId,
          receivedAt,
        },
        {
          http: route.http,
          mappingName: route.name,
          accountId: options.accountId,
          // The gateway's own credentials are not the function's business; with the gateway's
          // auth off (hearth dev) the header was not the gateway's and goes on.
          ...(route.http.auth === 'gateway' && authenticator.enabled
            ? { dropHeaders: ['authorization'] }
            : {}),
        },
      );
      const payload = Buffer.from(JSON.stringify(event));
      if (payload.length > options.syncPayloadBytes) throw tooLarge('event', options.syncPayloadBytes);
      const result = await invoker.invoke(
        { functionName: route.functionName, requestId, payload, source: 'sync' },
        callerGone(res),
      );
      write(res, requestId, result.functionError ? INTERNAL_SERVER_ERROR : answerFromResult(result.payload));
      return result.functionError ? 'function_error' : 'success';
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      if (error.status >= 500) {
        logger.warn(
          { mapping: route.name, code: error.code, message: error.message, requestId },
          'HTTP route call failed',
        );
      }
      const answer = answerFromError(error);
      write(res, requestId, answer);
      if (answer.statusCode === 429) return 'throttled';
      return answer.statusCode < 500 ? 'refused' : 'error';
    }
  }

  return (req: Request, res: Response, next: NextFunction) => {
    const url = req.originalUrl;
    const query = url.indexOf('?');
    const route = matchHttpRoute(routes, req.method, query < 0 ? url : url.slice(0, query));
    if (!route) return next();
    return serve(req, res, route).then(
      (outcome) => metrics.count(route, 'http', outcome),
      (error: unknown) => {
        metrics.count(route, 'http', 'error');
        throw error;
      },
    );
  };
}

function tooLarge(what: 'body' | 'event', limit: number): GatewayError {
  return new GatewayError(
    'RequestTooLargeException',
    what === 'body'
      ? `the request body must be at most ${limit} bytes`
      : `the request, as the function's event, must be at most ${limit} bytes`,
  );
}

function write(res: ServerResponse, requestId: string, answer: HttpAnswer): void {
  res.statusCode = answer.statusCode;
  for (const [name, value] of answer.headers) res.appendHeader(name, value);
  res.setHeader('content-length', answer.body.length);
  res.setHeader('x-amzn-RequestId', requestId);
  res.end(answer.body);
}
