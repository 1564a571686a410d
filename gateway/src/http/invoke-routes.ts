import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { parse as parseQuery } from 'node:querystring';
import { Router, type Request, type Response } from 'express';
import type { Logger } from 'pino';
import { InvokeHeaders } from '@hearth/api';
import type { Authenticator } from '../auth/authenticate.js';
import { GatewayError } from '../core/errors.js';
import type { InvokeRequest, InvokeResult } from '../core/invoker.js';
import type { LocalInvoker } from '../invoke/local-invoker.js';
import type { GatewayMetrics } from '../metrics.js';
import { BodyTooLargeError, readBody } from './body.js';
import { writeAnswer, type InvokeAnswer } from './answer.js';
import { errorAnswer } from './errors.js';
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
    /** Already parsed as JSON here: the queue does not parse it again. */
    payloadIsJson: true;
    /** The caller chose the request id: the same id again within a while is the same event. */
    deduplicate?: boolean;
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
  /** For errors of calls served by the fast path (Express's error handler logs the others). */
  logger: Logger;
}

/**
 * One Invoke call as a server hands it over: Node's HTTP server (IncomingMessage) or the
 * gateway's own front (a request parsed whole on the socket).
 */
export interface InvokeCall {
  /** The request target as sent: path and query. */
  url: string;
  /** Lower-case names. */
  headers: Record<string, string | string[] | undefined>;
  /** The whole body; rejects with BodyTooLargeError past `limit` bytes. */
  readBody(limit: number): Promise<Buffer>;
  /** Fires when the caller hangs up, so a waiting call stops waiting. */
  gone: AbortSignal;
}

const header = (call: InvokeCall, name: string) => {
  const value = call.headers[name];
  return typeof value === 'string' ? value : undefined;
};

/** The canonical Invoke paths, served without Express; any other spelling falls through to its router. */
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/?]+)\/invocations(?:\?(.*))?$/;
const PLAIN_PATH = /^\/function\/([^/?]+)(?:\?(.*))?$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const EMPTY = Buffer.alloc(0);

/** True for a POST to one of the Invoke routes spelt canonically (the ones `serve` takes). */
export function isInvokeRoute(method: string | undefined, url: string | undefined): boolean {
  return method === 'POST' && url !== undefined && (INVOKE_PATH.test(url) || PLAIN_PATH.test(url));
}

/** The Invoke routes: an Express router, and the same routes served without Express. */
export interface InvokeRoutes {
  router: Router;
  /**
   * Serves `req` when it is a POST to one of the Invoke routes spelt canonically and returns
   * true; returns false (and touches nothing) otherwise. Express's routing, its request and
   * response decoration and its middleware chain are a large share of a no-op call's CPU.
   */
  fastPath(req: IncomingMessage, res: ServerResponse): boolean;
  /** Answers a call to a route `isInvokeRoute` accepts; never rejects (errors become answers). */
  serve(call: InvokeCall): Promise<InvokeAnswer>;
}

/**
 * Lambda's Invoke (`POST /2015-03-31/functions/{name}/invocations`) and the plain one for curl
 * users (`POST /function/{name}`: the result as the body, a function error as a 500).
 */
export function invokeRoutes(options: InvokeRoutesOptions): InvokeRoutes {
  const router = Router();
  const { invoker, authenticator, metrics, logger } = options;

  /** Authenticates, reads and checks the request; returns it ready for the invoker. */
  async function accept(
    call: InvokeCall,
    requestId: string,
    reference: FunctionReference,
    type: InvocationType,
  ): Promise<InvokeRequest> {
    // A Bearer key (or auth off) is settled now; a SigV4 signature needs the body first.
    const settled = authenticator.precheck(header(call, 'authorization'));
    const limit = payloadLimit(type, options);
    let body: Buffer;
    try {
      body = await call.readBody(limit);
    } catch (error) {
      if (error instanceof BodyTooLargeError) throw requestTooLarge(type, limit);
      throw error;
    }
    if (!settled) {
      const query = call.url.indexOf('?');
      await authenticator.verify({
        method: 'POST',
        rawPath: query < 0 ? call.url : call.url.slice(0, query),
        rawQuery: query < 0 ? '' : call.url.slice(query + 1),
        headers: call.headers,
        body,
      });
    }
    const logTail = type === 'RequestResponse' && parseLogType(header(call, InvokeHeaders.logType));
    const clientContext = validateClientContext(header(call, InvokeHeaders.clientContext));
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

  /** Lambda's Invoke; `name` is the FunctionName segment, percent-decoded. */
  async function invoke(
    call: InvokeCall,
    requestId: string,
    name: string,
    qualifierParam: string | undefined,
  ): Promise<InvokeAnswer> {
    const reference = parseFunctionReference(name, qualifierParam);
    const type = parseInvocationType(header(call, InvokeHeaders.invocationType));
    const request = await accept(call, requestId, reference, type);

    if (type === 'DryRun') {
      const route = invoker.resolve(request);
      metrics.invocations.inc({ function: route.name, mode: 'dryrun', outcome: 'success' });
      return { status: 204, headers: { 'x-amzn-RequestId': requestId }, body: EMPTY, json: false };
    }
    if (type === 'Event') {
      invoker.resolve(request);
      if (!options.events)
        throw new GatewayError(
          'ServiceException',
          'Asynchronous invocation is not available on this gateway.',
        );
      const callerRequestId = header(call, InvokeHeaders.callerRequestId);
      if (callerRequestId !== undefined && !UUID.test(callerRequestId))
        throw new GatewayError(
          'InvalidParameterValueException',
          `${InvokeHeaders.callerRequestId} must be a UUID`,
        );
      const event: Parameters<EventQueue['enqueue']>[0] = {
        functionName: request.functionName,
        requestId: callerRequestId ?? requestId,
        payload: request.payload,
        payloadIsJson: true,
      };
      if (callerRequestId !== undefined) event.deduplicate = true;
      if (request.qualifier !== undefined) event.qualifier = request.qualifier;
      await options.events.enqueue(event);
      return { status: 202, headers: { 'x-amzn-RequestId': event.requestId }, body: EMPTY, json: false };
    }
    const result = await invoker.invoke(request, call.gone);
    return resultAnswer(requestId, result, 200);
  }

  /** The plain route: the event as the body, the result back, a function error as a 500. */
  async function invokePlain(call: InvokeCall, requestId: string, name: string): Promise<InvokeAnswer> {
    const reference = parseFunctionReference(name, undefined);
    const request = await accept(call, requestId, reference, 'RequestResponse');
    const result = await invoker.invoke(request, call.gone);
    return resultAnswer(requestId, result, result.functionError ? 500 : 200);
  }

  router.post('/2015-03-31/functions/:name/invocations', async (req, res) => {
    const qualifierParam = typeof req.query.Qualifier === 'string' ? req.query.Qualifier : undefined;
    const call = nodeCall(req, res, req.originalUrl);
    writeAnswer(
      res,
      await invoke(call, String(res.locals.requestId), String(req.params.name), qualifierParam),
    );
  });

  router.post('/function/:name', async (req, res) => {
    const call = nodeCall(req, res, req.originalUrl);
    writeAnswer(res, await invokePlain(call, String(res.locals.requestId), String(req.params.name)));
  });

  /** The canonical routes, by path alone (no Express): errors are answers here too. */
  async function serve(call: InvokeCall): Promise<InvokeAnswer> {
    const url = call.url;
    const requestId = randomUUID();
    try {
      const lambda = INVOKE_PATH.exec(url);
      const plain = lambda ? null : PLAIN_PATH.exec(url);
      if (!lambda && !plain)
        throw new GatewayError('ResourceNotFoundException', `No operation at POST ${url}.`);
      let name: string;
      try {
        name = decodeURIComponent((lambda ?? plain)![1]!);
      } catch {
        throw new GatewayError('InvalidRequestContentException', 'The request could not be read.');
      }
      if (plain) return await invokePlain(call, requestId, name);
      const query = lambda![2] === undefined ? undefined : parseQuery(lambda![2]).Qualifier;
      return await invoke(call, requestId, name, typeof query === 'string' ? query : undefined);
    } catch (error) {
      const query = url.indexOf('?');
      return errorAnswer(logger, error, requestId, query < 0 ? url : url.slice(0, query));
    }
  }

  function fastPath(req: IncomingMessage, res: ServerResponse): boolean {
    if (!isInvokeRoute(req.method, req.url)) return false;
    void serve(nodeCall(req, res, req.url!))
      .then((answer) => writeAnswer(res, answer))
      .catch((error: unknown) => {
        // Node refuses a header value it cannot send; the caller gets a closed connection.
        logger.error({ err: error, path: req.url }, 'the answer could not be written');
        res.destroy();
      });
    return true;
  }

  return { router, fastPath, serve };
}

/** A call taken by Node's HTTP server. */
function nodeCall(req: IncomingMessage, res: ServerResponse, url: string): InvokeCall {
  return { url, headers: req.headers, readBody: (limit) => readBody(req, limit), gone: callerGone(res) };
}

/** The signal of each client connection, made the first time one of its calls needs it. */
const connectionGone = new WeakMap<Socket, AbortSignal>();

/**
 * A signal that fires when the caller hangs up before its answer, so a waiting call stops waiting.
 * It is the connection's, shared by the calls it carries one after the other (an AbortController
 * and a listener per call were a measurable share of a no-op call): a closed connection can
 * deliver no answer, and a call that has answered no longer listens.
 */
export function callerGone(res: ServerResponse): AbortSignal {
  const socket = res.socket;
  if (!socket) return new AbortController().signal;
  let signal = connectionGone.get(socket);
  if (!signal) {
    const controller = new AbortController();
    socket.once('close', () => controller.abort());
    connectionGone.set(socket, (signal = controller.signal));
  }
  return signal;
}

function resultAnswer(requestId: string, result: InvokeResult, status: number): InvokeAnswer {
  const headers: Record<string, string> = {
    'x-amzn-RequestId': requestId,
    'X-Amz-Executed-Version': result.executedVersion,
  };
  if (result.functionError) headers['X-Amz-Function-Error'] = result.functionError;
  if (result.logResult) headers['X-Amz-Log-Result'] = result.logResult;
  return { status, headers, body: result.payload, json: true };
}

/** Every call gets its request id first, so even an early error answer carries one. */
export function assignRequestId(_req: Request, res: Response, next: () => void): void {
  res.locals.requestId = randomUUID();
  next();
}
