import type { Socket } from 'node:net';
import { HttpRequestParser, type ParsedRequest } from './http-request-parser.js';

/** One answer owed on a connection; answers leave in the order their requests came (HTTP/1.1). */
export interface PendingAnswer {
  head?: string;
  body?: Buffer;
  /** The connection ends after this answer (the client asked for it, or spoke HTTP/1.0). */
  close: boolean;
}

export interface HttpConnectionOptions<A extends PendingAnswer> {
  /** Request bodies longer than this arrive as `body: undefined`. */
  bodyLimit: number;
  /** An idle connection (no answer owed) is closed after this long; unset: never. */
  idleTimeoutMs?: number;
  /**
   * A request's head must arrive within `headersMs` of its first byte and the whole request
   * within `requestMs` (Node's server: 60 s and 300 s), or the client gets 408 and the connection
   * ends: a client that trickles a request in cannot hold a connection for ever. Unset: no limit.
   */
  requestTimeouts?: { headersMs: number; requestMs: number };
  onRequest(request: ParsedRequest, answer: A): void;
  /**
   * The client does not speak HTTP/1.x, or did not send its request in time (408); `answer` is
   * its last, the connection ends after it.
   */
  onMalformed(answer: A, status: 400 | 408 | 431, message: string): void;
  /**
   * Leaves requests this server does not serve to another: at the first request `serves`
   * refuses, this connection stops reading, writes the answers it still owes, then hands the
   * socket (paused) and the bytes it read from that request on to `handOver`.
   */
  passOn?: {
    serves(method: string, target: string): boolean;
    handOver(socket: Socket, rest: Buffer): void;
  };
}

/**
 * A client with this many answers owed is not read from until it has fewer: pipelining without
 * reading the answers cannot make the server hold an unbounded queue of calls and answers.
 */
const MAX_ANSWERS_OWED = 32;

const REASONS: Record<number, string> = {
  200: 'OK',
  202: 'Accepted',
  204: 'No Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** A header value as one line of text: control characters (line breaks included) become spaces. */
export function headerValue(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\x00-\x08\x0a-\x1f\x7f]+/g, ' ');
}

/**
 * The head of an answer: status line, content type (JSON unless `json` is false), length and
 * `extraHeaders` lines. A 204 has neither type nor length (RFC 9110, 8.6).
 */
function answerHead(status: number, bodyLength: number, extraHeaders: string, json: boolean): string {
  const statusLine = `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\n`;
  if (status === 204) return `${statusLine}${extraHeaders}\r\n`;
  // AWS's native runtime client crashes on an answer without a content type.
  const type = json ? 'content-type: application/json\r\n' : '';
  return `${statusLine}${type}content-length: ${bodyLength}\r\n${extraHeaders}\r\n`;
}

/**
 * The server side of one HTTP/1.1 connection on a plain socket: requests parsed as they arrive
 * (HttpRequestParser), answers written in request order, each as soon as it and those before it
 * are decided, several in one write when they are ready together. Node's HTTP server makes a
 * request and a response object with their streams per call; for the shim's few fixed exchanges
 * and the gateway's Invoke calls that machinery costs more CPU than the exchange itself.
 */
export class HttpConnection<A extends PendingAnswer = PendingAnswer> {
  private readonly parser: HttpRequestParser;
  private readonly answers: A[] = [];
  private readonly closeListeners = new Set<() => void>();
  private readonly handOver: ((socket: Socket, rest: Buffer) => void) | undefined;
  private readonly onMalformed: HttpConnectionOptions<A>['onMalformed'];
  private closed = false;
  /** A request that ends the connection was taken. */
  private closing = false;
  /** The bytes to hand over once the answers owed are written (passOn). */
  private handOverRest: Buffer | undefined;
  private readonly onData = (data: Buffer) => {
    this.parser.push(data);
    if (this.requestTimeouts) this.watchRequest();
  };
  /** Reading has stopped for good (the socket is handed over, or ends after a 408). */
  private stoppedReading = false;
  /** Reading is paused until the client takes its answers (throttle). */
  private throttled = false;
  private readonly onDrain = () => this.throttle();
  private readonly requestTimeouts: { headersMs: number; requestMs: number } | undefined;
  /** When the first byte of the request being received came; undefined between requests. */
  private requestStartedAt: number | undefined;
  private requestTimer: NodeJS.Timeout | undefined;
  private readonly onRequestTimer = () => {
    this.requestTimer = undefined;
    this.watchRequest();
  };
  private readonly onIdle = () => {
    if (this.answers.length === 0) this.socket.end();
  };

  constructor(
    private readonly socket: Socket,
    options: HttpConnectionOptions<A>,
  ) {
    socket.setNoDelay(true);
    this.parser = new HttpRequestParser({
      bodyLimit: options.bodyLimit,
      onContinue: () => socket.write('HTTP/1.1 100 Continue\r\n\r\n'),
      onRequest: (request) => {
        // Nothing pipelined after a request that ends the connection is taken (RFC 9112, 9.6):
        // its answer could not be sent.
        if (this.closing) return;
        this.closing = request.close;
        this.requestStartedAt = undefined;
        options.onRequest(request, this.expectAnswer(request.close));
        if (this.answers.length >= MAX_ANSWERS_OWED) this.throttle();
      },
      onMalformed: (status, message) => options.onMalformed(this.expectAnswer(true), status, message),
      ...(options.passOn && {
        passOn: {
          serves: options.passOn.serves,
          passOn: (rest) => this.stopReading(rest),
        },
      }),
    });
    this.handOver = options.passOn?.handOver;
    this.requestTimeouts = options.requestTimeouts;
    this.onMalformed = options.onMalformed;
    socket.on('data', this.onData);
    socket.on('drain', this.onDrain);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closed = true;
      clearTimeout(this.requestTimer);
      for (const listener of this.closeListeners) listener();
      this.closeListeners.clear();
    });
    if (options.idleTimeoutMs !== undefined) {
      // A listener of its own: setTimeout's callback would be called once, not at every idle spell.
      socket.on('timeout', this.onIdle);
      socket.setTimeout(options.idleTimeoutMs);
    }
  }

  /** Decides `answer` and writes what is due: it goes once every answer before it has. */
  reply(answer: A, status: number, body: Buffer, extraHeaders?: string, json = true): void {
    this.decide(answer, status, body, extraHeaders, json);
    this.flush();
  }

  /** Decides `answer` without writing yet: it leaves with the next `reply` that is due. */
  decide(answer: A, status: number, body: Buffer, extraHeaders = '', json = true): void {
    answer.head = answerHead(
      status,
      body.length,
      answer.close ? `${extraHeaders}connection: close\r\n` : extraHeaders,
      json,
    );
    answer.body = body;
  }

  /** Ends the connection now if it owes no answer, else right after the ones it owes. */
  closeWhenIdle(): void {
    if (this.answers.length === 0) {
      this.socket.end();
      return;
    }
    this.closing = true;
    this.answers[this.answers.length - 1]!.close = true;
  }

  /** The answer owed just before (-1) or after (+1) `answer`, if any. */
  neighbour(answer: A, offset: -1 | 1): A | undefined {
    const index = this.answers.indexOf(answer);
    return index < 0 ? undefined : this.answers[index + offset];
  }

  /** `listener` runs once when the connection ends (at once if it has); returns its removal. */
  onClose(listener: () => void): () => void {
    if (this.closed) {
      listener();
      return () => undefined;
    }
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Keeps one timer while a request is partly received, for the earliest deadline that can
   * apply; most requests arrive whole in one read and need none.
   */
  private watchRequest(): void {
    const receiving = this.parser.receiving();
    // A client held back because the server is behind is not the one running late.
    if (receiving === 'nothing' || this.closing || this.throttled) {
      this.requestStartedAt = undefined;
      clearTimeout(this.requestTimer);
      this.requestTimer = undefined;
      return;
    }
    const now = performance.now();
    this.requestStartedAt ??= now;
    if (this.requestTimer !== undefined) return;
    const { headersMs, requestMs } = this.requestTimeouts!;
    const limitMs = receiving === 'head' ? headersMs : requestMs;
    const leftMs = this.requestStartedAt + limitMs - now;
    if (leftMs > 0) {
      this.requestTimer = setTimeout(this.onRequestTimer, leftMs).unref();
      return;
    }
    // Nothing more is read; the 408 leaves after the answers owed, then the connection ends.
    this.stopTakingRequests();
    this.closing = true;
    const message =
      receiving === 'head'
        ? `The request head did not arrive within ${headersMs / 1000} s`
        : `The request did not arrive whole within ${requestMs / 1000} s`;
    this.onMalformed(this.expectAnswer(true), 408, message);
  }

  /**
   * Pauses reading while the client has too many answers owed or leaves its answers unread in
   * the socket's buffer (as Node's HTTP server does), and resumes once it has caught up.
   */
  private throttle(): void {
    if (this.stoppedReading || this.closed) return;
    const behind = this.answers.length >= MAX_ANSWERS_OWED || this.socket.writableNeedDrain;
    if (behind === this.throttled) return;
    this.throttled = behind;
    if (behind) {
      this.parser.hold();
      this.socket.pause();
      return;
    }
    this.socket.resume();
    this.parser.release();
    if (this.requestTimeouts) this.watchRequest();
  }

  /** No request is taken from here on: nothing more is parsed, timed or throttled. */
  private stopTakingRequests(): void {
    this.socket.off('data', this.onData);
    this.socket.off('drain', this.onDrain);
    clearTimeout(this.requestTimer);
    this.requestTimer = undefined;
    this.stoppedReading = true;
  }

  private stopReading(rest: Buffer): void {
    this.stopTakingRequests();
    this.socket.off('timeout', this.onIdle);
    this.socket.pause();
    this.socket.setTimeout(0);
    this.handOverRest = rest;
    this.handOverIfDone();
  }

  private handOverIfDone(): void {
    if (this.handOverRest === undefined || this.answers.length > 0 || this.closed) return;
    const rest = this.handOverRest;
    this.handOverRest = undefined;
    this.handOver!(this.socket, rest);
  }

  private expectAnswer(close: boolean): A {
    const answer = { close } as A;
    this.answers.push(answer);
    return answer;
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
        this.handOverRest = undefined;
      }
    }
    socket.uncork();
    if (this.throttled || socket.writableNeedDrain) this.throttle();
    this.handOverIfDone();
  }
}
