/** One HTTP/1.x request, read whole. */
export interface ParsedRequest {
  method: string;
  target: string;
  /** Lower-case names; a repeated header keeps its first value. */
  headers: Record<string, string>;
  /** Undefined when it was longer than the parser's body limit (read to its end and dropped). */
  body: Buffer | undefined;
  /** The client wants the connection closed after the answer (`Connection: close`, HTTP/1.0). */
  close: boolean;
}

export interface HttpRequestParserOptions {
  /** Bodies longer than this are read and dropped (`body` undefined). */
  bodyLimit: number;
  /** Longest request line plus headers. */
  maxHeadBytes?: number;
  onRequest(request: ParsedRequest): void;
  /** The client sent `Expect: 100-continue` and waits for the interim answer before its body. */
  onContinue(): void;
  /** The stream is not HTTP/1.x; nothing more is parsed. */
  onMalformed(status: 400 | 431, message: string): void;
  /**
   * For a server that takes only some requests and leaves the others to another server: a
   * request whose line `serves` refuses stops the parser, and `passOn` gets every byte from that
   * request's first on, so the connection can go on elsewhere.
   */
  passOn?: {
    serves(method: string, target: string): boolean;
    passOn(rest: Buffer): void;
  };
}

type Framing =
  | { kind: 'length'; remaining: number }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-end' | 'trailer'; remaining: number };

interface Head {
  method: string;
  target: string;
  headers: Record<string, string>;
  close: boolean;
}

const CRLF = Buffer.from('\r\n');
const CRLF_CRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);
const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.([01])$/;
const HEX = /^[0-9a-fA-F]{1,12}$/;
/** A chunk-size line longer than this is not a chunk size. */
const MAX_CHUNK_LINE = 1024;

class Malformed extends Error {
  constructor(
    readonly status: 400 | 431,
    message: string,
  ) {
    super(message);
  }
}

/** The request line and headers (pure). Scanned with indexOf: this runs twice per invocation. */
export function parseHead(text: string): Head {
  let lineEnd = text.indexOf('\r\n');
  if (lineEnd < 0) lineEnd = text.length;
  const requestLine = REQUEST_LINE.exec(text.slice(0, lineEnd));
  if (!requestLine) throw new Malformed(400, `Bad request line: ${text.slice(0, Math.min(lineEnd, 100))}`);
  // No prototype: a header called "constructor" or "__proto__" is just a header.
  const headers = Object.create(null) as Record<string, string>;
  for (let start = lineEnd + 2; start < text.length; start = lineEnd + 2) {
    lineEnd = text.indexOf('\r\n', start);
    if (lineEnd < 0) lineEnd = text.length;
    const colon = text.indexOf(':', start);
    const first = text.charCodeAt(start);
    if (colon <= start || colon > lineEnd || first === 0x20 || first === 0x09) {
      throw new Malformed(400, `Bad header line: ${text.slice(start, Math.min(lineEnd, start + 100))}`);
    }
    const name = text.slice(start, colon).trim().toLowerCase();
    headers[name] ??= text.slice(colon + 1, lineEnd).trim();
  }
  const connection = headers.connection?.toLowerCase() ?? '';
  const close = requestLine[3] === '0' ? !connection.includes('keep-alive') : connection.includes('close');
  return { method: requestLine[1]!, target: requestLine[2]!, headers, close };
}

/** How the body of a request with these headers is delimited (pure). */
export function bodyFraming(headers: Record<string, string>): Framing {
  const transferEncoding = headers['transfer-encoding'];
  if (transferEncoding !== undefined) {
    if (transferEncoding.toLowerCase().split(',').pop()!.trim() !== 'chunked') {
      throw new Malformed(400, `Unsupported transfer-encoding: ${transferEncoding}`);
    }
    return { kind: 'chunked', state: 'size', remaining: 0 };
  }
  const contentLength = headers['content-length'];
  if (contentLength === undefined) return { kind: 'length', remaining: 0 };
  if (!/^\d{1,15}$/.test(contentLength)) throw new Malformed(400, `Bad content-length: ${contentLength}`);
  return { kind: 'length', remaining: Number(contentLength) };
}

/**
 * An incremental HTTP/1.x request parser for a server's side of one connection: feed it the
 * bytes as they arrive, it calls back once per complete request, in order (pipelined requests
 * included). Bodies by `content-length` or chunked; `Expect: 100-continue` is reported so the
 * server can answer it.
 */
export class HttpRequestParser {
  private buffer: Buffer = EMPTY;
  private head: Head | undefined;
  private framing: Framing | undefined;
  private chunks: Buffer[] = [];
  private bodyBytes = 0;
  /** Malformed input, or the connection passed on: nothing more is parsed. */
  private stopped = false;
  /** Requests already received wait in the buffer until `release` (the server is behind). */
  private held = false;
  private parsing = false;

  constructor(private readonly options: HttpRequestParserOptions) {}

  /** How much of the next request has arrived: none of it, part of its head, or part of its body. */
  receiving(): 'nothing' | 'head' | 'body' {
    if (this.stopped) return 'nothing';
    if (this.head !== undefined) return 'body';
    return this.buffer.length > 0 ? 'head' : 'nothing';
  }

  /** Stops calling back (after the request being called back, if any) until `release`. */
  hold(): void {
    this.held = true;
  }

  /** Calls back the requests that arrived while held, and parses on as they come. */
  release(): void {
    this.held = false;
    // From inside a callback the running loop goes on by itself.
    if (!this.parsing) this.push(EMPTY);
  }

  push(data: Buffer): void {
    if (this.stopped) return;
    if (data.length > 0) this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
    if (this.held) return;
    this.parsing = true;
    try {
      while (!this.held && (this.head !== undefined || this.readHead()) && this.readBody()) {
        const head = this.head!;
        const body = this.bodyBytes > this.options.bodyLimit ? undefined : joined(this.chunks);
        this.head = undefined;
        this.framing = undefined;
        this.chunks = [];
        this.bodyBytes = 0;
        // Built field by field: an object spread here was a tenth of the shim's CPU per call.
        this.options.onRequest({
          method: head.method,
          target: head.target,
          headers: head.headers,
          close: head.close,
          body,
        });
      }
    } catch (error) {
      if (!(error instanceof Malformed)) throw error;
      this.stopped = true;
      this.buffer = EMPTY;
      this.options.onMalformed(error.status, error.message);
    } finally {
      this.parsing = false;
    }
  }

  /** False when the head has not fully arrived. */
  private readHead(): boolean {
    // Blank lines between requests are tolerated (RFC 9112, section 2.2).
    let start = 0;
    while (this.buffer[start] === 0x0d && this.buffer[start + 1] === 0x0a) start += 2;
    const end = this.buffer.indexOf(CRLF_CRLF, start);
    const maxHeadBytes = this.options.maxHeadBytes ?? 64 * 1024;
    if (end < 0) {
      if (this.buffer.length - start > maxHeadBytes) throw new Malformed(431, 'Request head too large');
      this.buffer = this.buffer.subarray(start);
      return false;
    }
    if (end - start > maxHeadBytes) throw new Malformed(431, 'Request head too large');
    const head = parseHead(this.buffer.toString('latin1', start, end));
    const passOn = this.options.passOn;
    if (passOn && !passOn.serves(head.method, head.target)) {
      const rest = this.buffer.subarray(start);
      this.stopped = true;
      this.buffer = EMPTY;
      passOn.passOn(rest);
      return false;
    }
    this.framing = bodyFraming(head.headers);
    this.head = head;
    this.buffer = this.buffer.subarray(end + 4);
    const expectsBody = this.framing.kind === 'chunked' || this.framing.remaining > 0;
    if (expectsBody && head.headers.expect?.toLowerCase() === '100-continue') this.options.onContinue();
    return true;
  }

  /** False when the body has not fully arrived. */
  private readBody(): boolean {
    const framing = this.framing!;
    if (framing.kind === 'length') {
      framing.remaining -= this.take(framing.remaining);
      return framing.remaining === 0;
    }
    for (;;) {
      switch (framing.state) {
        case 'size': {
          const end = this.buffer.indexOf(CRLF);
          if (end < 0) {
            if (this.buffer.length > MAX_CHUNK_LINE) throw new Malformed(400, 'Bad chunk size');
            return false;
          }
          const size = this.buffer.toString('latin1', 0, end).split(';', 1)[0]!.trim();
          if (!HEX.test(size)) throw new Malformed(400, `Bad chunk size: ${size.slice(0, 20)}`);
          this.buffer = this.buffer.subarray(end + 2);
          framing.remaining = parseInt(size, 16);
          framing.state = framing.remaining === 0 ? 'trailer' : 'data';
          break;
        }
        case 'data':
          framing.remaining -= this.take(framing.remaining);
          if (framing.remaining > 0) return false;
          framing.state = 'data-end';
          break;
        case 'data-end':
          if (this.buffer.length < 2) return false;
          if (this.buffer[0] !== 0x0d || this.buffer[1] !== 0x0a) {
            throw new Malformed(400, 'Chunk not followed by CRLF');
          }
          this.buffer = this.buffer.subarray(2);
          framing.state = 'size';
          break;
        case 'trailer': {
          const end = this.buffer.indexOf(CRLF);
          if (end < 0) {
            if (this.buffer.length > MAX_CHUNK_LINE) throw new Malformed(400, 'Bad chunked trailer');
            return false;
          }
          this.buffer = this.buffer.subarray(end + 2);
          if (end === 0) return true;
        }
      }
    }
  }

  /** Moves up to `wanted` buffered bytes into the body (dropped past the limit); returns how many. */
  private take(wanted: number): number {
    const taken = Math.min(wanted, this.buffer.length);
    if (taken === 0) return 0;
    this.bodyBytes += taken;
    if (this.bodyBytes <= this.options.bodyLimit) this.chunks.push(this.buffer.subarray(0, taken));
    else this.chunks = [];
    this.buffer = this.buffer.subarray(taken);
    return taken;
  }
}

function joined(chunks: Buffer[]): Buffer {
  return chunks.length === 0 ? EMPTY : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}
