import { createServer, type Server, type Socket } from 'node:net';
import { functionArn, Limits } from '@hearth/api/lambda';
import { SHIM_UNAVAILABLE, ShimHeaders, ShimPaths } from '@hearth/api/shim-protocol';
import type { ShimConfig } from './config.js';
import { fsPromises, nodeCrypto } from './deferred-builtins.js';
import type { ShimLogger } from './deferred-logger.js';
import { Dispatcher } from './dispatcher.js';
import { headerValue, HttpConnection, type PendingAnswer } from '@hearth/api/http-connection';
import type { ParsedRequest } from '@hearth/api/http-request-parser';
import { prepareIsolation, type IsolationPlan } from './isolation.js';
import { RuntimeSlot, type InvokeRequest, type InvokeResult, type LogSink } from './runtime-slot.js';

const HEALTHY = Buffer.from('{"status":"ok"}');
const READY = Buffer.from('{"ready":true}');
const NOT_READY = Buffer.from('{"ready":false}');

/** Invocations that may wait for a busy instance, per runtime process. */
const QUEUE_PER_SLOT = 256;

export interface ShimOptions {
  /** The shim's own operational log. */
  logger: ShimLogger;
  /** The function's log stream (Lambda's text format). */
  functionLog: LogSink;
}

export interface Shim {
  readonly server: Server;
  readonly isolation: IsolationPlan;
  /** Starts every runtime; resolves once each runtime process is spawned. */
  start(): Promise<void>;
  /** Resolves once every runtime has finished its first init, well or not (after `start`). */
  readonly initialized: Promise<void>;
  /** Stops taking invocations, lets those in flight finish, stops the runtimes, removes the state. */
  shutdown(): Promise<void>;
}

/** The invocation a `POST /invoke` asks for (pure: headers and body in, request out). */
export function parseInvokeRequest(
  headers: ParsedRequest['headers'],
  event: Buffer,
  config: ShimConfig,
): InvokeRequest {
  const deadline = Number(headers[ShimHeaders.deadlineMs]);
  const clientContext = headers[ShimHeaders.clientContext];
  const request: InvokeRequest = {
    requestId: headers[ShimHeaders.requestId] || nodeCrypto().randomUUID(),
    event,
    deadlineMs: deadline > 0 ? deadline : Infinity,
    invokedFunctionArn:
      headers[ShimHeaders.invokedFunctionArn] || functionArn(config.functionName, config.region),
    wantsLogTail: headers[ShimHeaders.logType]?.toLowerCase() === 'tail',
  };
  const traceId = headers[ShimHeaders.traceId];
  if (traceId) request.traceId = traceId;
  if (clientContext) request.clientContext = Buffer.from(clientContext, 'base64').toString('utf8');
  const cognitoIdentity = headers[ShimHeaders.cognitoIdentity];
  if (cognitoIdentity) request.cognitoIdentity = cognitoIdentity;
  return request;
}

/** The headers of a `POST /invoke` answer past its content type and length, as header lines. */
export function invokeResponseHeaders(result: InvokeResult, revision: string): string {
  let headers =
    `${ShimHeaders.durationMs}: ${result.durationMs.toFixed(2)}\r\n` +
    `${ShimHeaders.billedDurationMs}: ${result.billedDurationMs}\r\n` +
    `${ShimHeaders.maxMemoryUsedMb}: ${result.maxMemoryUsedMb}\r\n` +
    `${ShimHeaders.revision}: ${headerValue(revision)}\r\n`;
  if (result.errorType !== undefined) {
    // The error type may come from the function's own error body.
    headers +=
      `${ShimHeaders.functionError}: Unhandled\r\n` +
      `${ShimHeaders.errorType}: ${headerValue(result.errorType)}\r\n`;
  }
  if (result.initDurationMs !== undefined)
    headers += `${ShimHeaders.initDurationMs}: ${result.initDurationMs.toFixed(2)}\r\n`;
  if (result.logTail !== undefined) headers += `${ShimHeaders.logResult}: ${result.logTail}\r\n`;
  return headers;
}

/** A platform error answer (Lambda's `Service` shape, its type in two headers). */
function serviceError(
  connection: HttpConnection,
  answer: PendingAnswer,
  status: number,
  code: string,
  message: string,
) {
  const body = Buffer.from(JSON.stringify({ Type: 'Service', message, Message: message }));
  connection.reply(
    answer,
    status,
    body,
    `x-amzn-errortype: ${code}\r\n${ShimHeaders.errorType}: ${code}\r\n`,
  );
}

/**
 * Builds the shim: binds the instance's port (config.host, config.port: 0 takes a free one) and
 * makes the runtime slots, their Runtime API servers and sandboxes; `start` starts the runtimes.
 * The instance's port is bound first: the Runtime APIs listen on ephemeral ports, one of which
 * could otherwise be the very port this shim was given.
 */
export async function createShim(config: ShimConfig, options: ShimOptions): Promise<Shim> {
  const { logger } = options;
  let ready = false;
  let draining = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;

  // The gateway side speaks HTTP/1.1 on the socket, as the Runtime API does (HttpConnection).
  // Connections that come before `start` wait there, unread.
  const connections = new Set<HttpConnection>();
  let arrivedEarly: Socket[] | undefined = [];
  function serve(socket: Socket) {
    if (socket.destroyed) return;
    const connection: HttpConnection = new HttpConnection(socket, {
      bodyLimit: Limits.syncPayloadBytes,
      // Longer than any gateway's idle timeout, so a reused connection is never closed under it.
      idleTimeoutMs: 65_000,
      onRequest: (request, answer) => route(connection, request, answer),
      onMalformed: (answer, status, message) =>
        serviceError(connection, answer, status, 'InvalidRequestContentException', message),
    });
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  }
  const server = createServer((socket) => (arrivedEarly ? arrivedEarly.push(socket) : serve(socket)));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const prepared = await prepareIsolation(config);
  const { plan: isolation, stateDir } = prepared;
  const slots: RuntimeSlot[] = [];
  const dispatcher = new Dispatcher(slots, QUEUE_PER_SLOT * config.concurrency);
  for (const [index, { sandbox, capacity }] of prepared.slots.entries()) {
    slots.push(
      await RuntimeSlot.create(index, capacity, config, sandbox, options.functionLog, logger, () =>
        dispatcher.pump(),
      ),
    );
  }
  logger.info(
    {
      memory: isolation.memory,
      tmp: isolation.tmp,
      memoryMb: config.memoryMb,
      ephemeralStorageMb: config.ephemeralStorageMb,
      stateDir,
      tmpDir: isolation.tmp === 'directory' ? config.tmpDir : undefined,
    },
    `isolation: memory by ${isolation.memory}, /tmp by ${isolation.tmp}` +
      (isolation.tmp !== 'directory'
        ? ''
        : config.tmpDir
          ? ` (${config.tmpDir}, the instance's own /tmp, watched)`
          : ' (TMPDIR only: code writing to /tmp itself is not confined)'),
  );

  async function invoke(connection: HttpConnection, request: ParsedRequest, answer: PendingAnswer) {
    if (request.body === undefined) {
      return serviceError(
        connection,
        answer,
        413,
        'RequestTooLargeException',
        `Request must be smaller than ${Limits.syncPayloadBytes} bytes for the InvokeFunction operation`,
      );
    }
    if (draining) {
      return serviceError(connection, answer, 503, SHIM_UNAVAILABLE, 'The instance is shutting down');
    }
    const invocation = parseInvokeRequest(request.headers, request.body, config);
    inFlight++;
    // A caller gone before its call started takes it back from the queue.
    const stopWatching = connection.onClose(() => dispatcher.cancel(invocation));
    try {
      const result = await dispatcher.submit(invocation);
      if (result === 'unavailable') {
        return serviceError(
          connection,
          answer,
          503,
          SHIM_UNAVAILABLE,
          draining ? 'The instance is shutting down' : 'The instance is at capacity',
        );
      }
      connection.reply(answer, 200, result.body, invokeResponseHeaders(result, config.revision));
    } finally {
      stopWatching();
      if (--inFlight === 0) idle?.();
    }
  }

  function route(connection: HttpConnection, request: ParsedRequest, answer: PendingAnswer) {
    const path = request.target.split('?', 1)[0];
    if (request.method === 'POST' && path === ShimPaths.invoke) {
      invoke(connection, request, answer).catch((error: Error) => {
        logger.error({ err: error }, 'invoke failed');
        if (answer.head === undefined)
          serviceError(
            connection,
            answer,
            500,
            'ServiceException',
            'Internal error in the function instance',
          );
      });
    } else if (request.method === 'GET' && path === ShimPaths.healthz) {
      connection.reply(answer, 200, HEALTHY);
    } else if (request.method === 'GET' && path === ShimPaths.readyz) {
      const isReady = ready && !draining;
      connection.reply(answer, isReady ? 200 : 503, isReady ? READY : NOT_READY);
    } else {
      serviceError(
        connection,
        answer,
        404,
        'ResourceNotFoundException',
        `No route for ${request.method} ${path}`,
      );
    }
  }

  const initialized = Promise.all(slots.map((slot) => slot.firstInitSettled)).then(() => {
    ready = true;
  });

  return {
    server,
    isolation,
    async start() {
      const starting = Promise.all(slots.map((slot) => slot.start()));
      const early = arrivedEarly ?? [];
      arrivedEarly = undefined;
      for (const socket of early) serve(socket);
      await starting;
    },
    initialized,
    async shutdown() {
      draining = true;
      dispatcher.close();
      // Each invocation in flight ends by its deadline at the latest.
      if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve));
      await Promise.all(slots.map((slot) => slot.stop()));
      for (const connection of connections) connection.destroy();
      for (const socket of arrivedEarly ?? []) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      if (!config.stateDir) await fsPromises().rm(stateDir, { recursive: true, force: true });
    },
  };
}
