import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Limits, RUNTIME_API_VERSION, RuntimeApiHeaders } from '@hearth/api/lambda';

/** What the runtime gets from `/next` for one invocation. */
export interface RuntimeEvent {
  requestId: string;
  body: Buffer;
  deadlineMs: number;
  invokedFunctionArn: string;
  traceId: string;
  /** Decoded JSON text. */
  clientContext?: string;
  cognitoIdentity?: string;
}

/** How a report about an invocation was taken. */
export type ReportOutcome = 'accepted' | 'unknown-id' | 'already-reported';

/** The slot behind the Runtime API: it owns invocations, the API only speaks HTTP. */
export interface RuntimeApiHandler {
  /** The runtime asks for its next event; answer later with `sendEvent`. */
  next(response: ServerResponse): void;
  /** Whether `requestId` may be reported now (checked before a body is read). */
  canReport(requestId: string): ReportOutcome;
  response(requestId: string, body: Buffer): void;
  /** The runtime tried to send more than Lambda's response limit. */
  responseTooLarge(requestId: string): void;
  error(requestId: string, body: Buffer, errorTypeHeader: string | undefined): void;
  /** False when init is over (the report comes too late). */
  initError(body: Buffer, errorTypeHeader: string | undefined): boolean;
}

const PREFIX = `/${RUNTIME_API_VERSION}/runtime/`;
const ACCEPTED = JSON.stringify({ status: 'OK' });

function reply(response: ServerResponse, status: number, body: string) {
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  response.end(body);
}

function replyError(response: ServerResponse, status: number, errorType: string, errorMessage: string) {
  reply(response, status, JSON.stringify({ errorMessage, errorType }));
}

/** Reads a request body up to `limit` bytes; undefined when it was longer (the rest is drained). */
function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const declared = Number(request.headers['content-length'] ?? 0);
    let tooLarge = declared > limit;
    const chunks: Buffer[] = [];
    let length = 0;
    request.on('data', (chunk: Buffer) => {
      if (tooLarge) return;
      length += chunk.length;
      if (length > limit) {
        tooLarge = true;
        chunks.length = 0;
      } else chunks.push(chunk);
    });
    request.on('end', () =>
      resolve(tooLarge ? undefined : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)),
    );
    request.on('error', reject);
  });
}

/** Answers a parked `/next` with an event, with every header AWS's runtime clients read. */
export function sendEvent(response: ServerResponse, event: RuntimeEvent): void {
  const headers: Record<string, string | number> = {
    // AWS's native runtime client crashes on an answer without a content type.
    'content-type': 'application/json',
    'content-length': event.body.length,
    [RuntimeApiHeaders.requestId]: event.requestId,
    [RuntimeApiHeaders.deadlineMs]: event.deadlineMs,
    [RuntimeApiHeaders.invokedFunctionArn]: event.invokedFunctionArn,
    [RuntimeApiHeaders.traceId]: event.traceId,
  };
  // Sent only when present: runtime clients parse an empty value as JSON and fail.
  if (event.clientContext) headers[RuntimeApiHeaders.clientContext] = event.clientContext;
  if (event.cognitoIdentity) headers[RuntimeApiHeaders.cognitoIdentity] = event.cognitoIdentity;
  response.writeHead(200, headers);
  response.end(event.body);
}

async function route(handler: RuntimeApiHandler, request: IncomingMessage, response: ServerResponse) {
  const url = request.url ?? '';
  if (!url.startsWith(PREFIX)) return replyError(response, 404, 'NotFound', `No route for ${url}`);
  const path = url.slice(PREFIX.length);
  if (request.method === 'GET' && path === 'invocation/next') {
    request.resume();
    return handler.next(response);
  }
  if (request.method !== 'POST')
    return replyError(response, 405, 'MethodNotAllowed', `${request.method} ${url}`);
  const errorTypeHeader = request.headers[RuntimeApiHeaders.functionErrorType] as string | undefined;

  if (path === 'init/error') {
    const body = (await readBody(request, Limits.responseBytes)) ?? Buffer.from('{}');
    if (!handler.initError(body, errorTypeHeader)) {
      return replyError(response, 403, 'InvalidStateTransition', 'Init is already complete');
    }
    return reply(response, 202, ACCEPTED);
  }

  const match = /^invocation\/([^/]+)\/(response|error)$/.exec(path);
  if (!match) return replyError(response, 404, 'NotFound', `No route for ${url}`);
  const requestId = decodeURIComponent(match[1]!);
  const kind = match[2]!;
  const outcome = handler.canReport(requestId);
  if (outcome !== 'accepted') {
    request.resume();
    return outcome === 'unknown-id'
      ? replyError(response, 400, 'InvalidRequestID', `Invalid request ID: ${requestId}`)
      : replyError(response, 403, 'InvalidStateTransition', `Invocation ${requestId} was already reported`);
  }
  const body = await readBody(request, Limits.responseBytes);
  // The runtime may have been replaced while the body was arriving.
  if (handler.canReport(requestId) !== 'accepted') {
    return replyError(
      response,
      403,
      'InvalidStateTransition',
      `Invocation ${requestId} was already reported`,
    );
  }
  if (body === undefined) {
    handler.responseTooLarge(requestId);
    return replyError(
      response,
      413,
      'RequestEntityTooLarge',
      `Exceeded maximum allowed payload size (${Limits.responseBytes} bytes).`,
    );
  }
  if (kind === 'response') handler.response(requestId, body);
  else handler.error(requestId, body, errorTypeHeader);
  reply(response, 202, ACCEPTED);
}

/** The Lambda Runtime API on 127.0.0.1, for one runtime process at a time. */
export async function startRuntimeApi(
  handler: RuntimeApiHandler,
): Promise<{ server: Server; address: string }> {
  const server = createServer({ keepAlive: true, noDelay: true }, (request, response) => {
    route(handler, request, response).catch((error: Error) => {
      if (!response.headersSent) replyError(response, 500, 'Runtime.InternalError', error.message);
    });
  });
  // One trusted client that long-polls: idle connections stay open for as long as it likes.
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  server.headersTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return { server, address: `127.0.0.1:${port}` };
}
