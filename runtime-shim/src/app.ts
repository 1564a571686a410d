import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { functionArn, Limits } from '@hearth/api/lambda';
import { SHIM_UNAVAILABLE, ShimHeaders, ShimPaths } from '@hearth/api/shim-protocol';
import type { ShimConfig } from './config.js';
import type { ShimLogger } from './deferred-logger.js';
import { Dispatcher } from './dispatcher.js';
import { prepareIsolation, type IsolationPlan, type PreparedIsolation } from './isolation.js';
import { RuntimeSlot, type InvokeRequest, type InvokeResult, type LogSink } from './runtime-slot.js';

/** Invocations that may wait for a busy instance, per runtime process. */
const QUEUE_PER_SLOT = 256;

export interface ShimOptions {
  /** The shim's own operational log. */
  logger: ShimLogger;
  /** The function's log stream (Lambda's text format). */
  functionLog: LogSink;
  /**
   * The sandboxes, when made beforehand (the shim's main starts on them first: making a /tmp
   * image waits on mkfs and the disk, which can overlap loading the rest of the shim).
   */
  isolation?: PreparedIsolation;
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
  headers: IncomingHttpHeaders,
  event: Buffer,
  config: ShimConfig,
): InvokeRequest {
  const header = (name: string) => {
    const value = headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const deadline = Number(header(ShimHeaders.deadlineMs));
  const clientContext = header(ShimHeaders.clientContext);
  const request: InvokeRequest = {
    requestId: header(ShimHeaders.requestId) || randomUUID(),
    event,
    deadlineMs: deadline > 0 ? deadline : Infinity,
    invokedFunctionArn:
      header(ShimHeaders.invokedFunctionArn) || functionArn(config.functionName, config.region),
    wantsLogTail: header(ShimHeaders.logType)?.toLowerCase() === 'tail',
  };
  const traceId = header(ShimHeaders.traceId);
  if (traceId) request.traceId = traceId;
  if (clientContext) request.clientContext = Buffer.from(clientContext, 'base64').toString('utf8');
  const cognitoIdentity = header(ShimHeaders.cognitoIdentity);
  if (cognitoIdentity) request.cognitoIdentity = cognitoIdentity;
  return request;
}

/** The headers of a `POST /invoke` answer. */
export function invokeResponseHeaders(
  result: InvokeResult,
  revision: string,
): Record<string, string | number> {
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': result.body.length,
    [ShimHeaders.durationMs]: result.durationMs.toFixed(2),
    [ShimHeaders.billedDurationMs]: result.billedDurationMs,
    [ShimHeaders.maxMemoryUsedMb]: result.maxMemoryUsedMb,
    [ShimHeaders.revision]: revision,
  };
  if (result.errorType !== undefined) {
    headers[ShimHeaders.functionError] = 'Unhandled';
    headers[ShimHeaders.errorType] = result.errorType;
  }
  if (result.initDurationMs !== undefined)
    headers[ShimHeaders.initDurationMs] = result.initDurationMs.toFixed(2);
  if (result.logTail !== undefined) headers[ShimHeaders.logResult] = result.logTail;
  return headers;
}

function serviceError(response: ServerResponse, status: number, code: string, message: string) {
  const body = JSON.stringify({ Type: 'Service', message, Message: message });
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'x-amzn-errortype': code,
    [ShimHeaders.errorType]: code,
  });
  response.end(body);
}

function readEvent(request: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let tooLarge = Number(request.headers['content-length'] ?? 0) > Limits.syncPayloadBytes;
    request.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      length += chunk.length;
      if (length > Limits.syncPayloadBytes) tooLarge = true;
      else chunks.push(chunk);
    });
    request.on('end', () =>
      resolve(tooLarge ? undefined : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)),
    );
    request.on('error', reject);
  });
}

/** Builds the shim (sandboxes, runtime slots, HTTP server) without listening or starting runtimes. */
export async function createShim(config: ShimConfig, options: ShimOptions): Promise<Shim> {
  const { logger } = options;
  const prepared = options.isolation ?? (await prepareIsolation(config));
  const { plan: isolation, stateDir } = prepared;
  const slots: RuntimeSlot[] = [];
  const dispatcher = new Dispatcher(slots, QUEUE_PER_SLOT * config.concurrency);
  for (const [index, sandbox] of prepared.sandboxes.entries()) {
    slots.push(
      await RuntimeSlot.create(index, config, sandbox, options.functionLog, logger, () => dispatcher.pump()),
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

  let ready = false;
  let draining = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;

  async function invoke(request: IncomingMessage, response: ServerResponse) {
    const event = await readEvent(request);
    if (event === undefined) {
      return serviceError(
        response,
        413,
        'RequestTooLargeException',
        `Request must be smaller than ${Limits.syncPayloadBytes} bytes for the InvokeFunction operation`,
      );
    }
    if (draining) return serviceError(response, 503, SHIM_UNAVAILABLE, 'The instance is shutting down');
    const invocation = parseInvokeRequest(request.headers, event, config);
    inFlight++;
    const onClose = () => dispatcher.cancel(invocation);
    response.once('close', onClose);
    try {
      const result = await dispatcher.submit(invocation);
      if (result === 'unavailable') {
        return serviceError(
          response,
          503,
          SHIM_UNAVAILABLE,
          draining ? 'The instance is shutting down' : 'The instance is at capacity',
        );
      }
      response.writeHead(200, invokeResponseHeaders(result, config.revision));
      response.end(result.body);
    } finally {
      response.off('close', onClose);
      if (--inFlight === 0) idle?.();
    }
  }

  const server = createServer({ keepAlive: true, noDelay: true }, (request, response) => {
    const path = request.url?.split('?', 1)[0];
    if (request.method === 'POST' && path === ShimPaths.invoke) {
      invoke(request, response).catch((error: Error) => {
        logger.error({ err: error }, 'invoke failed');
        if (!response.headersSent)
          serviceError(response, 500, 'ServiceException', 'Internal error in the function instance');
      });
      return;
    }
    request.resume();
    if (request.method === 'GET' && path === ShimPaths.healthz) {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
    } else if (request.method === 'GET' && path === ShimPaths.readyz) {
      const status = ready && !draining ? 200 : 503;
      response
        .writeHead(status, { 'content-type': 'application/json' })
        .end(JSON.stringify({ ready: status === 200 }));
    } else {
      serviceError(response, 404, 'ResourceNotFoundException', `No route for ${request.method} ${path}`);
    }
  });
  // Longer than any gateway's idle timeout, so a reused connection is never closed under it.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.requestTimeout = 0;

  const initialized = Promise.all(slots.map((slot) => slot.firstInitSettled)).then(() => {
    ready = true;
  });

  return {
    server,
    isolation,
    async start() {
      await Promise.all(slots.map((slot) => slot.start()));
    },
    initialized,
    async shutdown() {
      draining = true;
      dispatcher.close();
      // Each invocation in flight ends by its deadline at the latest.
      if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve));
      await Promise.all(slots.map((slot) => slot.stop()));
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      if (!config.stateDir) await rm(stateDir, { recursive: true, force: true });
    },
  };
}
