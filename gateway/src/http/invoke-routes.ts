import { randomUUID } from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { InvokeHeaders } from '@hearth/api';
import type { Authenticator } from '../auth/authenticate.js';
import { GatewayError } from '../core/errors.js';
import type { InvokeRequest, InvokeResult } from '../core/invoker.js';
import type { LocalInvoker } from '../invoke/local-invoker.js';
import type { GatewayMetrics } from '../metrics.js';
import { BodyTooLargeError, readBody } from './body.js';
import {
  eventPayload,
  parseFunctionReference,
  parseInvocationType,
  parseLogType,
  payloadLimit,
  requestTooLarge,
  validateClientContext,
  type FunctionReference,
  type InvocationType,
} from './invoke-request.js';

/** What the Event path hands the async side: it stores the event and resolves once Redis has it. */
export interface EventQueue {
  enqueue(request: {
    functionName: string;
    qualifier?: string;
    requestId: string;
    payload: Buffer;
  }): Promise<void>;
}

export interface InvokeRoutesOptions {
  invoker: LocalInvoker;
  authenticator: Authenticator;
  metrics: GatewayMetrics;
  /** Absent on a gateway without the async side: Event calls then fail with 500. */
  events: EventQueue | undefined;
  syncPayloadBytes: number;
  asyncPayloadBytes: number;
}

const header = (req: Request, name: string) => {
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
};

/**
 * Lambda's Invoke (`POST /2015-03-31/functions/{name}/invocations`) and the plain one for curl
 * users (`POST /function/{name}`: the result as the body, a function error as a 500).
 */
export function invokeRoutes(options: InvokeRoutesOptions): Router {
  const router = Router();
  const { invoker, authenticator, metrics } = options;

  /** Authenticates, reads and checks the request; returns it ready for the invoker. */
  async function accept(
    req: Request,
    res: Response,
    reference: FunctionReference,
    type: InvocationType,
  ): Promise<InvokeRequest> {
    const requestId = String(res.locals.requestId);
    // A Bearer key (or auth off) is settled now; a SigV4 signature needs the body first.
    const settled = authenticator.precheck(header(req, 'authorization'));
    const limit = payloadLimit(type, options);
    let body: Buffer;
    try {
      body = await readBody(req, limit);
    } catch (error) {
      if (error instanceof BodyTooLargeError) throw requestTooLarge(type, limit);
      throw error;
    }
    if (!settled) {
      const query = req.originalUrl.indexOf('?');
      await authenticator.verify({
        method: req.method,
        rawPath: query < 0 ? req.originalUrl : req.originalUrl.slice(0, query),
        rawQuery: query < 0 ? '' : req.originalUrl.slice(query + 1),
        headers: req.headers,
        body,
      });
    }
    const logTail = type === 'RequestResponse' && parseLogType(header(req, InvokeHeaders.logType));
    const clientContext = validateClientContext(header(req, InvokeHeaders.clientContext));
    const request: InvokeRequest = {
      functionName: reference.name,
      requestId,
      payload: eventPayload(body),
      source: 'sync',
    };
    if (reference.qualifier !== undefined) request.qualifier = reference.qualifier;
    if (clientContext) request.clientContext = clientContext;
    if (logTail) request.logTail = true;
    return request;
  }

  /** A signal that fires when the caller hangs up before its answer, so a waiting call stops waiting. */
  function callerGone(res: Response): AbortSignal {
    const controller = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) controller.abort();
    });
    return controller.signal;
  }

  router.post('/2015-03-31/functions/:name/invocations', async (req, res) => {
    const requestId = String(res.locals.requestId);
    const qualifierParam = typeof req.query.Qualifier === 'string' ? req.query.Qualifier : undefined;
    const reference = parseFunctionReference(String(req.params.name), qualifierParam);
    const type = parseInvocationType(header(req, InvokeHeaders.invocationType));
    const request = await accept(req, res, reference, type);

    if (type === 'DryRun') {
      const route = invoker.resolve(request);
      metrics.invocations.inc({ function: route.name, mode: 'dryrun', outcome: 'success' });
      res.writeHead(204, { 'x-amzn-RequestId': requestId }).end();
      return;
    }
    if (type === 'Event') {
      invoker.resolve(request);
      if (!options.events)
        throw new GatewayError(
          'ServiceException',
          'Asynchronous invocation is not available on this gateway.',
        );
      const event: Parameters<EventQueue['enqueue']>[0] = {
        functionName: request.functionName,
        requestId,
        payload: request.payload,
      };
      if (request.qualifier !== undefined) event.qualifier = request.qualifier;
      await options.events.enqueue(event);
      res.writeHead(202, { 'x-amzn-RequestId': requestId, 'Content-Length': 0 }).end();
      return;
    }
    const result = await invoker.invoke(request, callerGone(res));
    writeResult(res, requestId, result, 200);
  });

  router.post('/function/:name', async (req, res) => {
    const requestId = String(res.locals.requestId);
    const reference = parseFunctionReference(String(req.params.name), undefined);
    const request = await accept(req, res, reference, 'RequestResponse');
    const result = await invoker.invoke(request, callerGone(res));
    writeResult(res, requestId, result, result.functionError ? 500 : 200);
  });

  return router;
}

function writeResult(res: Response, requestId: string, result: InvokeResult, status: number): void {
  const headers: Record<string, string | number> = {
    'Content-Type': 'application/json',
    'Content-Length': result.payload.length,
    'x-amzn-RequestId': requestId,
    'X-Amz-Executed-Version': result.executedVersion,
  };
  if (result.functionError) headers['X-Amz-Function-Error'] = result.functionError;
  if (result.logResult) headers['X-Amz-Log-Result'] = result.logResult;
  res.writeHead(status, headers).end(result.payload);
}

/** Every call gets its request id first, so even an early error answer carries one. */
export function assignRequestId(_req: Request, res: Response, next: () => void): void {
  res.locals.requestId = randomUUID();
  next();
}
