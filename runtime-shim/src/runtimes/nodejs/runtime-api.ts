/**
 * A client for the Lambda Runtime API as AWS documents it
 * (`http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/...`).
 *
 * One keep-alive connection carries every call: the runtime asks for the next event, answers it
 * and asks again, so a warm invocation costs two requests on an open socket and nothing more.
 * The bootstrap imports only Node built-ins (it runs in function images without our
 * node_modules), so the header names are spelt out here rather than imported from `@hearth/api`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { createConnection, type Socket } from 'node:net';
import { writeRecord } from './logging.js';

/**
 * Lambda's limit on an invocation's response: the Runtime API refuses a larger one with 413. Its
 * own copy of @hearth/api's Limits.responseBytes (units.test.ts keeps them equal): the runtime's
 * bundle takes nothing from @hearth/api.
 */
export const RESPONSE_LIMIT_BYTES = 6_291_456;

export interface Invocation {
  requestId: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export interface ErrorReport {
  errorType: string;
  errorMessage: string;
  trace?: string[];
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

interface Pending {
  resolve: (answer: Answer) => void;
  reject: (error: Error) => void;
  /** The request, kept to send it again if a reused connection turns out to be closed. */
  request: string;
  retried: boolean;
}

const CRLF_CRLF = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

/**
 * An HTTP/1.1 client for exactly one server and one keep-alive connection, on a plain socket:
 * one `write` per request, and the answer parsed here (status line, headers, a body sized by
 * `content-length`, sent chunked, or ending with the connection). Node's `http.request` costs
 * several times as much CPU per call, and the runtime makes two calls per invocation.
 *
 * Requests go out in order and answers come back in order (HTTP/1.1 pipelining), though the
 * runtime asks one thing at a time. While no request is waiting for its answer the socket is
 * unref'd, so it never keeps the event loop alive: `beforeExit` still fires when the handler's
 * own work is done, while a long poll for the next event keeps the process alive.
 */
class Connection {
  private socket: Socket | undefined;
  /** Requests written on the current socket, oldest first; the first one's answer is being read. */
  private readonly inFlight: Pending[] = [];
  private buffer: Buffer = Buffer.alloc(0);
  /** Parsed head of the answer being read, while its body is still arriving. */
  private head:
    { status: number; headers: IncomingHttpHeaders; bodyBytes: number | 'chunked' | 'close' } | undefined;
  private chunks: Buffer[] = [];
  /** Whether the socket has already carried an answer (a failure on it may be a stale close). */
  private reused = false;
  private lastError: Error | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
  ) {}

  /** Requests sent inside `writes` go out together, in one system call. */
  batch(writes: () => void): void {
    const socket = this.socket ?? this.connect();
    socket.cork();
    try {
      writes();
    } finally {
      socket.uncork();
    }
  }

  send(request: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      this.write({ resolve, reject, request, retried: false });
    });
  }

  private write(pending: Pending): void {
    const socket = this.socket ?? this.connect();
    if (this.inFlight.length === 0) socket.ref();
    this.inFlight.push(pending);
    socket.write(pending.request, 'latin1');
  }

  private connect(): Socket {
    const socket = createConnection({ host: this.host, port: this.port });
    socket.setNoDelay(true);
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.head = undefined;
    this.chunks = [];
    this.reused = false;
    this.lastError = undefined;
    socket.on('data', (data: Buffer) => {
      this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
      this.parse();
    });
    socket.on('error', (error) => (this.lastError = error));
    socket.on('close', () => this.closed(socket));
    return socket;
  }

  private closed(socket: Socket): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    // A body that runs to the end of the connection is complete now.
    if (this.head?.bodyBytes === 'close') {
      this.chunks.push(this.buffer);
      this.buffer = Buffer.alloc(0);
      this.finish();
    }
    const failed = this.inFlight.splice(0);
    const reused = this.reused;
    for (const pending of failed) {
      // A server may close a keep-alive connection while it sits idle during a long invocation;
      // a request that meets that closing socket goes again on a new one, once.
      if (reused && !pending.retried && this.head === undefined) {
        pending.retried = true;
        this.write(pending);
      } else {
        const cause = this.lastError;
        pending.reject(
          new Error(`Runtime API connection closed before the answer${cause ? `: ${cause.message}` : ''}`, {
            cause,
          }),
        );
      }
    }
  }

  private parse(): void {
    for (;;) {
      if (!this.head) {
        const end = this.buffer.indexOf(CRLF_CRLF);
        if (end < 0) return;
        const lines = this.buffer.toString('latin1', 0, end).split('\r\n');
        this.buffer = this.buffer.subarray(end + 4);
        const status = Number(lines[0]!.split(' ', 2)[1]);
        const headers: IncomingHttpHeaders = {};
        for (let i = 1; i < lines.length; i++) {
          const line = lines[i]!;
          const colon = line.indexOf(':');
          if (colon <= 0) continue;
          const name = line.slice(0, colon).trim().toLowerCase();
          const value = line.slice(colon + 1).trim();
          const previous = headers[name];
          if (previous === undefined) headers[name] = value;
          else if (Array.isArray(previous)) previous.push(value);
          else headers[name] = name === 'set-cookie' ? [previous, value] : `${previous}, ${value}`;
        }
        const length = headers['content-length'];
        const encoding = headers['transfer-encoding'];
        const bodyBytes =
          typeof encoding === 'string' && encoding.toLowerCase().includes('chunked')
            ? 'chunked'
            : typeof length === 'string'
              ? Number(length)
              : status === 204 || status === 304 || (status >= 100 && status < 200)
                ? 0
                : 'close';
        if (status >= 100 && status < 200) continue; // 100 Continue and the like: no answer yet.
        this.head = { status, headers, bodyBytes };
        this.chunks = [];
      }
      const head = this.head;
      if (head.bodyBytes === 'close') return;
      if (head.bodyBytes === 'chunked') {
        if (!this.readChunks()) return;
      } else {
        if (this.buffer.length < head.bodyBytes) return;
        this.chunks.push(this.buffer.subarray(0, head.bodyBytes));
        this.buffer = this.buffer.subarray(head.bodyBytes);
      }
      this.finish();
    }
  }

  /** Consumes chunks from the buffer; true once the last one (and the trailers) is in. */
  private readChunks(): boolean {
    for (;;) {
      const lineEnd = this.buffer.indexOf(CRLF);
      if (lineEnd < 0) return false;
      const size = parseInt(this.buffer.toString('latin1', 0, lineEnd), 16);
      if (size === 0) {
        // The last chunk: trailers, if any, then an empty line (found at lineEnd when none).
        const end = this.buffer.indexOf(CRLF_CRLF, lineEnd);
        if (end < 0) return false;
        this.buffer = this.buffer.subarray(end + 4);
        return true;
      }
      if (this.buffer.length < lineEnd + 2 + size + 2) return false;
      this.chunks.push(this.buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      this.buffer = this.buffer.subarray(lineEnd + 2 + size + 2);
    }
  }

  private finish(): void {
    const head = this.head!;
    this.head = undefined;
    const pending = this.inFlight.shift();
    this.reused = true;
    const body =
      this.chunks.length === 1
        ? this.chunks[0]!.toString('utf8')
        : Buffer.concat(this.chunks).toString('utf8');
    this.chunks = [];
    const connection = head.headers.connection;
    if (typeof connection === 'string' && connection.toLowerCase() === 'close') {
      // The server closes after this answer: later requests need a new connection.
      const socket = this.socket;
      this.socket = undefined;
      socket?.end();
      const rest = this.inFlight.splice(0);
      for (const next of rest) this.write(next);
    }
    if (this.inFlight.length === 0) this.socket?.unref();
    pending?.resolve({ status: head.status, headers: head.headers, body });
  }
}

export class RuntimeApiClient {
  private readonly host: string;
  private readonly port: number;
  private readonly connection: Connection;
  private readonly hostHeader: string;

  constructor(address: string) {
    const separator = address.lastIndexOf(':');
    this.host = separator > 0 ? address.slice(0, separator) : address;
    this.port = separator > 0 ? Number(address.slice(separator + 1)) : 80;
    this.hostHeader = address;
    this.connection = new Connection(this.host, this.port);
  }

  /**
   * Sends what `writes` asks for in one system call: the runtime answers an invocation and asks
   * for the next one together (HTTP/1.1 pipelining; the answers still come back one by one).
   */
  batch(writes: () => void): void {
    this.connection.batch(writes);
  }

  /** Long-polls for the next event; there is no timeout, the platform answers when it has one. */
  async nextInvocation(): Promise<Invocation> {
    const { status, headers, body } = await this.call('GET', '/2018-06-01/runtime/invocation/next');
    if (status !== 200) throw new Error(`Runtime API /next answered ${status}: ${body}`);
    const requestId = headers['lambda-runtime-aws-request-id'];
    if (typeof requestId !== 'string') throw new Error('Runtime API /next answered without a request id');
    return { requestId, headers, body };
  }

  async postResponse(requestId: string, body: string): Promise<void> {
    const path = `/2018-06-01/runtime/invocation/${encodeURIComponent(requestId)}/response`;
    const bytes = Buffer.from(body, 'utf8');
    if (bytes.length > RESPONSE_LIMIT_BYTES) {
      // Said before the response goes: the platform ends the invocation when it takes the report,
      // so only what the runtime wrote before that is in the invocation's log tail.
      writeRecord('ERROR', [
        `Response payload size (${bytes.length} bytes) exceeded maximum allowed payload size (${RESPONSE_LIMIT_BYTES} bytes).`,
      ]);
    }
    await this.expectAccepted(await this.call('POST', path, bytes));
  }

  async postError(requestId: string, report: ErrorReport): Promise<void> {
    const path = `/2018-06-01/runtime/invocation/${encodeURIComponent(requestId)}/error`;
    await this.expectAccepted(
      await this.call('POST', path, Buffer.from(JSON.stringify(report)), report.errorType),
    );
  }

  async postInitError(report: ErrorReport): Promise<void> {
    await this.expectAccepted(
      await this.call(
        'POST',
        '/2018-06-01/runtime/init/error',
        Buffer.from(JSON.stringify(report)),
        report.errorType,
      ),
    );
  }

  private async expectAccepted(answer: { status: number; body: string }) {
    // 4xx means this report was refused (already answered, unknown id, too large): the platform
    // has decided the invocation's outcome, and the runtime carries on. 5xx means the platform
    // is broken, and the documented reaction is to exit.
    if (answer.status >= 500) throw new Error(`Runtime API answered ${answer.status}: ${answer.body}`);
    if (answer.status !== 202)
      writeRecord('ERROR', [`Runtime API answered ${answer.status}: ${answer.body}`]);
  }

  /** `body` is the UTF-8 of a JSON document. */
  private call(method: string, path: string, body?: Buffer, functionErrorType?: string): Promise<Answer> {
    let request = `${method} ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\n`;
    // Header values cannot carry control characters; an error type is a short identifier anyway.
    if (functionErrorType)
      request += `Lambda-Runtime-Function-Error-Type: ${functionErrorType.replace(/[^\x20-\x7e]/g, '')}\r\n`;
    if (body === undefined) return this.connection.send(request + '\r\n');
    // The body goes in the same write; latin1 keeps its UTF-8 bytes as they are.
    request += `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    return this.connection.send(request + body.toString('latin1'));
  }
}
