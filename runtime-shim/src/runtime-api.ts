import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { Limits, RUNTIME_API_VERSION, RuntimeApiHeaders } from '@hearth/api/lambda';
import { HttpRequestParser, type ParsedRequest } from './http-request-parser.js';

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
const REASONS: Record<number, string> = {
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
};

function errorBody(errorType: string, errorMessage: string): Buffer {
  return Buffer.from(JSON.stringify({ errorMessage, errorType }));
}

/** Header values go out as one line each: JSON loses nothing when its line breaks become spaces. */
function headerValue(value: string): string {
  return /[\r\n]/.test(value) ? value.replace(/[\r\n]+/g, ' ') : value;
}

/** The head of an answer: status line, JSON content type, length and `extraHeaders` lines. */
function answerHead(status: number, bodyLength: number, extraHeaders = ''): string {
  return (
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\n` +
    // AWS's native runtime client crashes on an answer without a content type.
    `content-type: application/json\r\ncontent-length: ${bodyLength}\r\n${extraHeaders}\r\n`
  );
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

/** One answer owed to the runtime; answers leave in the order their requests came (HTTP/1.1). */
interface PendingAnswer {
  head?: string;
  body?: Buffer;
  /** The connection ends after this answer (the runtime asked for it, or spoke HTTP/1.0). */
  close: boolean;
  /** A report taken, whose 202 is due (see `acknowledge`). */
  acknowledgementDue?: boolean;
  /** A `/next` still waiting for its event. */
  parked?: boolean;
}

/**
 * One runtime connection. The Runtime API is HTTP/1.1 between the shim and one trusted local
 * process, two requests per invocation: it is parsed here on the socket (see
 * HttpRequestParser) rather than by Node's HTTP server, whose request and response objects cost
 * several times the CPU of the exchange itself.
 */
class RuntimeApiConnection {
  private readonly parser: HttpRequestParser;
  private readonly answers: PendingAnswer[] = [];
  private readonly closeListeners: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly handler: RuntimeApiHandler,
  ) {
    socket.setNoDelay(true);
    this.parser = new HttpRequestParser({
      bodyLimit: Limits.responseBytes,
      onContinue: () => socket.write('HTTP/1.1 100 Continue\r\n\r\n'),
      onRequest: (request) => this.route(request),
      onMalformed: (status, message) => {
        this.reply(this.expectAnswer(true), status, errorBody('InvalidRequest', message));
      },
    });
    socket.on('data', (data: Buffer) => this.parser.push(data));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closed = true;
      for (const listener of this.closeListeners.splice(0)) listener();
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private expectAnswer(close: boolean): PendingAnswer {
    const answer: PendingAnswer = { close };
    this.answers.push(answer);
    return answer;
  }

  private reply(answer: PendingAnswer, status: number, body: Buffer, extraHeaders?: string): void {
    answer.head = answerHead(status, body.length, extraHeaders);
    answer.body = body;
    this.flush();
  }

  /** Writes every answer that is due, in request order, in one system call. */
  private flush(): void {
    if (this.closed || this.answers[0]?.head === undefined) return;
    const socket = this.socket;
    socket.cork();
    while (this.answers[0]?.head !== undefined) {
      const answer = this.answers.shift()!;
      socket.write(answer.head!, 'latin1');
      if (answer.body!.length > 0) socket.write(answer.body!);
      if (answer.close) {
        socket.end();
        this.answers.length = 0;
      }
    }
    socket.uncork();
  }

  private route(request: ParsedRequest): void {
    const answer = this.expectAnswer(request.close);
    const fail = (status: number, errorType: string, message: string) =>
      this.reply(answer, status, errorBody(errorType, message));
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
      return this.reply(answer, 202, ACCEPTED);
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
      // The caller's answer goes first: it is written from the promise callbacks the report
      // settled, which run before the next immediate.
      setImmediate(() => this.acknowledge(answer));
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

  /**
   * Answers a report with 202. A runtime that asked for its next event along with the report
   * (our own runtimes do, in the same write) gets the acknowledgement with that event instead,
   * in one write: it wakes once per invocation rather than twice.
   */
  private acknowledge(answer: PendingAnswer): void {
    if (answer.head !== undefined) return;
    const behind = this.answers[this.answers.indexOf(answer) + 1];
    if (!behind?.parked) this.reply(answer, 202, ACCEPTED);
  }

  private parkedNext(answer: PendingAnswer): ParkedNext {
    answer.parked = true;
    return {
      send: (event) => {
        answer.parked = false;
        const ahead = this.answers[this.answers.indexOf(answer) - 1];
        if (ahead?.acknowledgementDue && ahead.head === undefined) {
          ahead.head = answerHead(202, ACCEPTED.length);
          ahead.body = ACCEPTED;
        }
        this.reply(answer, 200, event.body, eventHeaders(event));
      },
      destroy: () => this.destroy(),
      onClose: (listener) => {
        if (this.closed) listener();
        else this.closeListeners.push(listener);
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
