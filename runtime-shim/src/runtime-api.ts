import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Limits, RUNTIME_API_VERSION, RuntimeApiHeaders } from '@hearth/api/lambda';
import { headerValue, HttpConnection, type PendingAnswer } from '@hearth/api/http-connection';
import type { ParsedRequest } from '@hearth/api/http-request-parser';

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

/** A runtime's `GET /next`, waiting for an event. */
export interface ParkedNext {
  /** Answers with the event, with every header AWS's runtime clients read. */
  send(event: RuntimeEvent): void;
  /** Closes the runtime's connection: a runtime being replaced gets nothing more. */
  destroy(): void;
  /** `listener` runs once if the connection ends before an event was sent. */
  onClose(listener: () => void): void;
}

/** The slot behind the Runtime API: it owns invocations, the API only speaks HTTP. */
export interface RuntimeApiHandler {
  /** The runtime asks for its next event; answer later with `next.send`. */
  next(next: ParkedNext): void;
  /** Whether `requestId` may be reported now. */
  canReport(requestId: string): ReportOutcome;
  response(requestId: string, body: Buffer): void;
  /** The runtime tried to send more than Lambda's response limit. */
  responseTooLarge(requestId: string): void;
  error(requestId: string, body: Buffer, errorTypeHeader: string | undefined): void;
  /** False when init is over (the report comes too late). */
  initError(body: Buffer, errorTypeHeader: string | undefined): boolean;
}

export interface RuntimeApi {
  /** `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`. */
  readonly address: string;
  /** Closes the runtime's connections and stops listening. */
  close(): Promise<void>;
}

const PREFIX = `/${RUNTIME_API_VERSION}/runtime/`;
const ACCEPTED = Buffer.from(JSON.stringify({ status: 'OK' }));
const REPORT_PATH = /^invocation\/([^/]+)\/(response|error)$/;
function errorBody(errorType: string, errorMessage: string): Buffer {
  return Buffer.from(JSON.stringify({ errorMessage, errorType }));
}

/** The event headers of a `/next` answer (pure). */
export function eventHeaders(event: RuntimeEvent): string {
  let headers =
    `${RuntimeApiHeaders.requestId}: ${event.requestId}\r\n` +
    `${RuntimeApiHeaders.deadlineMs}: ${event.deadlineMs}\r\n` +
    `${RuntimeApiHeaders.invokedFunctionArn}: ${event.invokedFunctionArn}\r\n` +
    `${RuntimeApiHeaders.traceId}: ${event.traceId}\r\n`;
  // Sent only when present: runtime clients parse an empty value as JSON and fail.
  if (event.clientContext)
    headers += `${RuntimeApiHeaders.clientContext}: ${headerValue(event.clientContext)}\r\n`;
  if (event.cognitoIdentity)
    headers += `${RuntimeApiHeaders.cognitoIdentity}: ${headerValue(event.cognitoIdentity)}\r\n`;
  return headers;
}

/** An answer owed to the runtime, with what the Runtime API keeps about it. */
interface RuntimeApiAnswer extends PendingAnswer {
  /** A report taken, whose 202 is due (it may wait for the /next behind it). */
  acknowledgementDue?: boolean;
  /** A `/next` still waiting for its event. */
  parked?: boolean;
}

/**
 * One runtime connection: the Runtime API is HTTP/1.1 between the shim and one trusted local
 * process, two requests per invocation, spoken on the socket (HttpConnection).
 */
class RuntimeApiConnection {
  private readonly http: HttpConnection<RuntimeApiAnswer>;

  constructor(
    socket: Socket,
    private readonly handler: RuntimeApiHandler,
  ) {
    this.http = new HttpConnection<RuntimeApiAnswer>(socket, {
      bodyLimit: Limits.responseBytes,
      onRequest: (request, answer) => this.route(request, answer),
      onMalformed: (answer, status, message) =>
        this.http.reply(answer, status, errorBody('InvalidRequest', message)),
    });
  }

  destroy(): void {
    this.http.destroy();
  }

  private route(request: ParsedRequest, answer: RuntimeApiAnswer): void {
    const fail = (status: number, errorType: string, message: string) =>
      this.http.reply(answer, status, errorBody(errorType, message));
    const { method, target } = request;
    if (!target.startsWith(PREFIX)) return fail(404, 'NotFound', `No route for ${target}`);
    const path = target.slice(PREFIX.length);
    if (method === 'GET' && path === 'invocation/next') return this.handler.next(this.parkedNext(answer));
    if (method !== 'POST') return fail(405, 'MethodNotAllowed', `${method} ${target}`);
    const errorTypeHeader = request.headers[RuntimeApiHeaders.functionErrorType];

    if (path === 'init/error') {
      if (!this.handler.initError(request.body ?? Buffer.from('{}'), errorTypeHeader)) {
        return fail(403, 'InvalidStateTransition', 'Init is already complete');
      }
      return this.http.reply(answer, 202, ACCEPTED);
    }

    const match = REPORT_PATH.exec(path);
    if (!match) return fail(404, 'NotFound', `No route for ${target}`);
    let requestId: string;
    try {
      requestId = decodeURIComponent(match[1]!);
    } catch {
      return fail(400, 'InvalidRequestID', `Invalid request ID: ${match[1]}`);
    }
    const refusal = this.refusal(requestId);
    if (refusal) return fail(...refusal);
    const body = request.body;
    // Taken on the next turn of the event loop: output the runtime wrote before its report
    // (its stdout and stderr pipes are ready in the same poll) is read first, so it belongs to
    // the invocation's log and its tail.
    setImmediate(() => {
      const lateRefusal = this.refusal(requestId);
      if (lateRefusal) return fail(...lateRefusal);
      if (body === undefined) {
        this.handler.responseTooLarge(requestId);
        return fail(
          413,
          'RequestEntityTooLarge',
          `Exceeded maximum allowed payload size (${Limits.responseBytes} bytes).`,
        );
      }
      answer.acknowledgementDue = true;
      if (match[2] === 'response') this.handler.response(requestId, body);
      else this.handler.error(requestId, body, errorTypeHeader);
      // A runtime that asked for its next event along with this report (ours do, in the same
      // write) gets the 202 with that event, in one write (see parkedNext): it wakes once per
      // invocation, not twice. Any other gets it after the caller's answer, which is written
      // from the promise callbacks the report settled, before the next immediate.
      if (answer.head === undefined && !this.http.neighbour(answer, 1)?.parked) {
        setImmediate(() => this.http.reply(answer, 202, ACCEPTED));
      }
    });
  }

  /** Why a report about `requestId` is refused now (status, error type, message), if it is. */
  private refusal(requestId: string): [400 | 403, string, string] | undefined {
    const outcome = this.handler.canReport(requestId);
    if (outcome === 'unknown-id') return [400, 'InvalidRequestID', `Invalid request ID: ${requestId}`];
    if (outcome === 'already-reported') {
      return [403, 'InvalidStateTransition', `Invocation ${requestId} was already reported`];
    }
    return undefined;
  }

  private parkedNext(answer: RuntimeApiAnswer): ParkedNext {
    answer.parked = true;
    // One /next per invocation on a connection that lives for many: its close listener goes
    // when the event is sent, or the connection would collect one per invocation.
    let stopWatching: () => void = () => undefined;
    return {
      send: (event) => {
        stopWatching();
        answer.parked = false;
        const ahead = this.http.neighbour(answer, -1);
        if (ahead?.acknowledgementDue && ahead.head === undefined) this.http.decide(ahead, 202, ACCEPTED);
        this.http.reply(answer, 200, event.body, eventHeaders(event));
      },
      destroy: () => this.destroy(),
      onClose: (listener) => {
        stopWatching = this.http.onClose(listener);
      },
    };
  }
}

/** The Lambda Runtime API on 127.0.0.1, for one runtime process at a time. */
export async function startRuntimeApi(handler: RuntimeApiHandler): Promise<RuntimeApi> {
  const connections = new Set<RuntimeApiConnection>();
  const server = createServer((socket) => {
    const connection = new RuntimeApiConnection(socket, handler);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    async close() {
      for (const connection of connections) connection.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
