import { connect, type Socket } from 'node:net';
import { Limits, ShimHeaders, ShimPaths, SHIM_UNAVAILABLE } from '@hearth/api';

export interface ShimCall {
  requestId: string;
  payload: Buffer;
  deadlineMs: number;
  invokedFunctionArn: string;
  clientContext?: string;
  logTail?: boolean;
}

export interface ShimAnswer {
  payload: Buffer;
  functionError?: 'Unhandled';
  errorType?: string;
  logResult?: string;
  initDurationMs?: number;
  durationMs?: number;
}

/**
 * Why a call did not get an answer. `refused` and `unreachable` mean the instance never ran it,
 * so another instance may; `failed` means it may have run (the instance died or went silent).
 */
export class ShimCallError extends Error {
  constructor(
    readonly kind: 'refused' | 'unreachable' | 'failed',
    message: string,
  ) {
    super(message);
  }
}

/** How long past the call's deadline the gateway waits for the shim's own timeout answer. */
const DEADLINE_GRACE_MS = 5000;
/** The shim caps responses at 6 MB; a little room for its error JSON around that. */
const MAX_ANSWER_BYTES = Limits.responseBytes + 64 * 1024;
/** Status line and headers of an answer; the shim's are a few hundred bytes. */
const MAX_HEAD_BYTES = 64 * 1024;
/**
 * Idle connections are closed after 2-2.5 s, before an instance's keep-alive timeout could close
 * one just as a call is written to it (the shim's is 65 s, but Node's HTTP servers default to 5 s):
 * such a failure could not be told apart from an instance dying mid-call, and a call is never
 * sent twice. Running calls are not limited by it.
 */
const IDLE_TIMEOUT_MS = 2000;
/**
 * How often one timer looks for calls past their deadline (and its grace) and idle connections:
 * a timer set and cleared per call was a measurable share of a no-op call's CPU, and neither
 * limit needs to be kept to the millisecond.
 */
const SWEEP_INTERVAL_MS = 500;
const CRLF = Buffer.from('\r\n');
/** States of a chunked body besides "bytes left of a chunk". */
const SIZE_LINE = -1;
const TRAILER = -2;
const CHUNKS_DONE = -3;
const HEAD_END = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.[01] \d{3}(?![^ \r])/;

/** An answer as read off the wire: status, headers, body. */
interface RawAnswer {
  status: number;
  headers: AnswerHeaders;
  body: Buffer;
}

/** The call a connection is carrying, if any. */
interface PendingCall {
  resolve(answer: RawAnswer): void;
  reject(error: ShimCallError): void;
  /** False until the first byte of the answer: a refused connect can still be retried elsewhere. */
  answered: boolean;
  /** Epoch ms after which the call is given up: its deadline and DEADLINE_GRACE_MS. */
  giveUpAt: number;
}

/**
 * One kept-alive connection to an instance, with a small HTTP/1.1 answer reader. Node's
 * http.request builds a ClientRequest, an agent entry, a parser and an IncomingMessage stream
 * per call; for the gateway's one fixed request shape that machinery was most of a no-op call's
 * CPU, so the client speaks the protocol itself: one write per call, the answer parsed in place.
 */
class ShimConnection {
  readonly socket: Socket;
  /** Set once the socket connected (a refusal before that is `unreachable`). */
  private connected = false;
  private call: PendingCall | undefined;
  private buffer: Buffer | undefined;
  private head: AnswerHead | undefined;
  private chunks: Buffer[] = [];
  private bodySize = 0;
  /** Chunked bodies: bytes left of the current chunk with its CRLF, or one of the states below. */
  private chunkLeft = SIZE_LINE;
  /** Epoch ms of the last answer, while the connection waits in its pool for a call. */
  private idleSince: number | undefined;
  closed = false;

  constructor(
    private readonly pool: ShimPool,
    host: string,
    port: number,
  ) {
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('connect', () => (this.connected = true));
    this.socket.on('data', (data: Buffer) => this.onData(data));
    this.socket.on('error', (error: NodeJS.ErrnoException) => this.fail(error));
    this.socket.on('close', () => this.fail(undefined));
  }

  /** Sends a request; `head` is the request line and headers, `body` the payload. */
  send(head: string, body: Buffer, call: PendingCall): void {
    this.idleSince = undefined;
    this.call = call;
    if (body.length <= 16 * 1024) {
      // One buffer for head and body: latin1 is one byte a character.
      const message = Buffer.allocUnsafe(head.length + body.length);
      message.write(head, 0, 'latin1');
      body.copy(message, head.length);
      this.socket.write(message);
    } else {
      this.socket.cork();
      this.socket.write(head, 'latin1');
      this.socket.write(body);
      this.socket.uncork();
    }
  }

  /** Closes the connection; its pool no longer hands it out. */
  destroy(): void {
    this.closed = true;
    this.socket.destroy();
    this.pool.forget(this);
  }

  /** Gives up a call past its deadline, or closes a connection idle for too long. */
  sweep(now: number): void {
    const call = this.call;
    if (call && now > call.giveUpAt) {
      this.failCall(`the instance gave no answer by the call's deadline and ${DEADLINE_GRACE_MS} ms`);
    } else if (this.idleSince !== undefined && now - this.idleSince >= IDLE_TIMEOUT_MS) {
      this.destroy();
    }
  }

  private fail(error: NodeJS.ErrnoException | undefined): void {
    const call = this.call;
    this.call = undefined;
    this.closed = true;
    this.pool.forget(this);
    if (!call) return;
    if (this.head?.length === 'close' && error === undefined) {
      // An answer without a length ends with the connection.
      call.resolve(this.finishAnswer());
      return;
    }
    const code = error?.code;
    if (
      !this.connected &&
      !call.answered &&
      (code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENOTFOUND')
    ) {
      call.reject(new ShimCallError('unreachable', `instance unreachable: ${code}`));
      return;
    }
    call.reject(
      new ShimCallError(
        'failed',
        call.answered
          ? `instance answer broke off: ${code ?? error?.message ?? 'connection closed'}`
          : `instance connection failed: ${code ?? error?.message ?? 'connection closed'}`,
      ),
    );
    this.socket.destroy();
  }

  private onData(data: Buffer): void {
    const call = this.call;
    if (!call) {
      // Bytes nobody asked for: the connection cannot be trusted with a call any more.
      this.destroy();
      return;
    }
    call.answered = true;
    if (!this.head) {
      const buffer = this.buffer ? Buffer.concat([this.buffer, data]) : data;
      const end = buffer.indexOf(HEAD_END);
      if (end < 0) {
        if (buffer.length > MAX_HEAD_BYTES) return this.protocolError('answer headers too large');
        this.buffer = buffer;
        return;
      }
      this.buffer = undefined;
      const head = parseHead(buffer.subarray(0, end).toString('latin1'));
      if (!head) return this.protocolError('malformed answer');
      if (head.status >= 100 && head.status < 200) {
        // An interim answer (100 Continue): the real one follows.
        if (buffer.length > end + 4) this.onData(buffer.subarray(end + 4));
        return;
      }
      this.head = head;
      data = buffer.subarray(end + 4);
    }
    if (data.length > 0 && !this.readBody(data)) return;
    if (this.head.length !== 'close' && this.bodyComplete()) this.complete();
  }

  /** Takes body bytes; false when the answer was refused (too large, bad chunk). */
  private readBody(data: Buffer): boolean {
    const head = this.head!;
    if (head.length !== 'chunked') {
      this.bodySize += data.length;
      if (this.bodySize > MAX_ANSWER_BYTES) {
        this.tooLarge();
        return false;
      }
      if (typeof head.length === 'number' && this.bodySize > head.length) {
        this.protocolError('answer longer than its content-length');
        return false;
      }
      this.chunks.push(data);
      return true;
    }
    // Chunked: a size line, that many bytes and CRLF, again; size 0, trailer lines and an empty line end it.
    let rest: Buffer = this.buffer ? Buffer.concat([this.buffer, data]) : data;
    this.buffer = undefined;
    while (rest.length > 0 && this.chunkLeft !== CHUNKS_DONE) {
      if (this.chunkLeft === SIZE_LINE || this.chunkLeft === TRAILER) {
        const eol = rest.indexOf(CRLF);
        if (eol < 0) {
          if (rest.length > MAX_HEAD_BYTES) {
            this.protocolError('bad chunked answer');
            return false;
          }
          this.buffer = rest;
          return true;
        }
        const line = rest.subarray(0, eol).toString('latin1');
        rest = rest.subarray(eol + 2);
        if (this.chunkLeft === TRAILER) {
          if (line === '') this.chunkLeft = CHUNKS_DONE;
          continue;
        }
        const size = parseInt(line, 16);
        if (!Number.isSafeInteger(size) || size < 0) {
          this.protocolError('bad chunk size');
          return false;
        }
        this.chunkLeft = size === 0 ? TRAILER : size + 2;
        continue;
      }
      const before = this.chunkLeft;
      const take = Math.min(before, rest.length);
      // The chunk's closing CRLF (its last two bytes) is not body.
      const bodyPart = rest.subarray(0, Math.max(0, Math.min(take, before - 2)));
      rest = rest.subarray(take);
      this.chunkLeft = before - take === 0 ? SIZE_LINE : before - take;
      if (bodyPart.length > 0) {
        this.bodySize += bodyPart.length;
        if (this.bodySize > MAX_ANSWER_BYTES) {
          this.tooLarge();
          return false;
        }
        this.chunks.push(bodyPart);
      }
    }
    return true;
  }

  private bodyComplete(): boolean {
    const head = this.head!;
    return head.length === 'chunked' ? this.chunkLeft === CHUNKS_DONE : this.bodySize === head.length;
  }

  private finishAnswer(): RawAnswer {
    const head = this.head!;
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.bodySize);
    this.head = undefined;
    this.chunks = [];
    this.bodySize = 0;
    this.chunkLeft = SIZE_LINE;
    return { status: head.status, headers: head.headers, body };
  }

  private complete(): void {
    const call = this.call!;
    const keepAlive = this.head!.headers.connection?.toLowerCase() !== 'close';
    const answer = this.finishAnswer();
    this.call = undefined;
    if (keepAlive && !this.closed) {
      this.idleSince = Date.now();
      this.pool.release(this);
    } else {
      this.destroy();
    }
    call.resolve(answer);
  }

  private tooLarge(): void {
    this.failCall(`instance answer exceeded ${MAX_ANSWER_BYTES} bytes`);
  }

  private protocolError(why: string): void {
    this.failCall(`instance answer broke off: ${why}`);
  }

  /** Fails the call in flight (it may have run) and closes the connection, which cannot be trusted with another. */
  private failCall(message: string): void {
    const call = this.call;
    this.call = undefined;
    this.destroy();
    call?.reject(new ShimCallError('failed', message));
  }
}

/** The answer headers the gateway reads; an answer's other headers are skipped unread. */
const READ_HEADERS = [
  'connection',
  'content-length',
  'transfer-encoding',
  ShimHeaders.functionError,
  ShimHeaders.errorType,
  ShimHeaders.logResult,
  ShimHeaders.initDurationMs,
  ShimHeaders.durationMs,
] as const;
const READ_HEADER_NAMES = new Set<string>(READ_HEADERS);

/** The values of the headers the gateway reads, by lower-case name; the first of repeated ones. */
type AnswerHeaders = Partial<Record<(typeof READ_HEADERS)[number], string>>;

/** What an answer's head says: status, headers and how its body is delimited. */
interface AnswerHead {
  status: number;
  headers: AnswerHeaders;
  length: number | 'chunked' | 'close';
}

/**
 * Reads an answer's head, keeping only the few headers the gateway reads: splitting every header
 * into a map, lower-casing and trimming each, was the costliest function of a no-op call.
 */
function parseHead(text: string): AnswerHead | undefined {
  if (!STATUS_LINE.test(text)) return undefined;
  const status = Number(text.slice(9, 12));
  const headers: AnswerHeaders = {};
  for (let lineEnd = text.indexOf('\r\n'); lineEnd >= 0;) {
    const start = lineEnd + 2;
    lineEnd = text.indexOf('\r\n', start);
    const colon = text.indexOf(':', start);
    if (colon <= start || (lineEnd >= 0 && colon > lineEnd)) return undefined;
    let name = text.slice(start, colon);
    // The shim's names are lower case already; others' are matched without regard to case.
    if (!READ_HEADER_NAMES.has(name) && !READ_HEADER_NAMES.has((name = name.toLowerCase()))) continue;
    headers[name as keyof AnswerHeaders] ??= text.slice(colon + 1, lineEnd < 0 ? undefined : lineEnd).trim();
  }
  let length: number | 'chunked' | 'close';
  const contentLength = headers['content-length'];
  if (status === 204 || status === 304) length = 0;
  else if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) length = 'chunked';
  else if (contentLength !== undefined) {
    length = contentLength === '' ? NaN : Number(contentLength);
    if (!Number.isSafeInteger(length) || length < 0) return undefined;
  } else length = 'close';
  return { status, headers, length };
}

/** Kept-alive connections to one instance, the most recently used first. */
class ShimPool {
  readonly idle: ShimConnection[] = [];
  readonly all = new Set<ShimConnection>();
  readonly host: string;
  readonly port: number;
  /** Request line and the headers every call carries. */
  readonly headPrefix: string;

  constructor(baseUrl: string) {
    const url = new URL(baseUrl);
    if (url.protocol !== 'http:') throw new Error(`instance URL must be http: ${baseUrl}`);
    this.host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    this.port = url.port === '' ? 80 : Number(url.port);
    this.headPrefix =
      `POST ${new URL(ShimPaths.invoke, baseUrl).pathname} HTTP/1.1\r\n` +
      `host: ${url.host}\r\ncontent-type: application/json\r\n`;
  }

  connection(): ShimConnection {
    for (let connection = this.idle.pop(); connection; connection = this.idle.pop()) {
      if (!connection.closed && !connection.socket.destroyed) return connection;
    }
    const connection = new ShimConnection(this, this.host, this.port);
    this.all.add(connection);
    return connection;
  }

  release(connection: ShimConnection): void {
    this.idle.push(connection);
  }

  forget(connection: ShimConnection): void {
    this.all.delete(connection);
    const index = this.idle.indexOf(connection);
    if (index >= 0) this.idle.splice(index, 1);
  }
}

/** Calls `POST /invoke` on instances over kept-alive connections. */
export class ShimClient {
  private readonly pools = new Map<string, ShimPool>();
  private sweeper: NodeJS.Timeout | undefined;

  close(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const pool of this.pools.values()) for (const connection of [...pool.all]) connection.destroy();
    this.pools.clear();
  }

  private sweep(): void {
    const now = Date.now();
    for (const pool of this.pools.values()) for (const connection of [...pool.all]) connection.sweep(now);
  }

  invoke(baseUrl: string, call: ShimCall): Promise<ShimAnswer> {
    let pool = this.pools.get(baseUrl);
    if (!pool) {
      try {
        pool = new ShimPool(baseUrl);
      } catch (error) {
        return Promise.reject(new ShimCallError('unreachable', (error as Error).message));
      }
      this.pools.set(baseUrl, pool);
      this.sweeper ??= setInterval(() => this.sweep(), SWEEP_INTERVAL_MS).unref();
    }
    let head =
      pool.headPrefix +
      `content-length: ${call.payload.length}\r\n` +
      `${ShimHeaders.requestId}: ${call.requestId}\r\n` +
      `${ShimHeaders.deadlineMs}: ${call.deadlineMs}\r\n` +
      `${ShimHeaders.invokedFunctionArn}: ${call.invokedFunctionArn}\r\n`;
    if (call.clientContext) head += `${ShimHeaders.clientContext}: ${call.clientContext}\r\n`;
    if (call.logTail) head += `${ShimHeaders.logType}: Tail\r\n`;
    head += '\r\n';
    if (/[\r\n]/.test(call.requestId + call.invokedFunctionArn + (call.clientContext ?? ''))) {
      return Promise.reject(new ShimCallError('refused', 'a header value holds a line break'));
    }
    const connection = pool.connection();
    return new Promise<ShimAnswer>((resolve, reject) => {
      connection.send(head, call.payload, {
        answered: false,
        giveUpAt: call.deadlineMs + DEADLINE_GRACE_MS,
        resolve: (raw) => {
          const answer = toAnswer(raw);
          if (answer instanceof ShimCallError) reject(answer);
          else resolve(answer);
        },
        reject,
      });
    });
  }
}

/** Maps the shim's answer; a 503 is a refusal, any other non-200 a failure. */
function toAnswer(raw: RawAnswer): ShimAnswer | ShimCallError {
  const header = (name: keyof AnswerHeaders) => raw.headers[name];
  if (raw.status === 503) {
    return new ShimCallError(
      'refused',
      `instance refused the call: ${header(ShimHeaders.errorType) ?? SHIM_UNAVAILABLE}`,
    );
  }
  if (raw.status !== 200) {
    return new ShimCallError('failed', `instance answered ${raw.status}`);
  }
  const number = (name: keyof AnswerHeaders) => {
    const value = header(name);
    return value === undefined || value === '' || !Number.isFinite(Number(value)) ? undefined : Number(value);
  };
  const answer: ShimAnswer = { payload: raw.body };
  if (header(ShimHeaders.functionError)) answer.functionError = 'Unhandled';
  const errorType = header(ShimHeaders.errorType);
  if (errorType) answer.errorType = errorType;
  const logResult = header(ShimHeaders.logResult);
  if (logResult) answer.logResult = logResult;
  const init = number(ShimHeaders.initDurationMs);
  if (init !== undefined) answer.initDurationMs = init;
  const duration = number(ShimHeaders.durationMs);
  if (duration !== undefined) answer.durationMs = duration;
  return answer;
}
