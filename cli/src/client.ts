import { CliError, ExitCode } from './errors.js';
import type { Settings } from './settings.js';

export interface GatewayResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

export interface RequestOptions {
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** Called with bytes sent so far while a large body goes out. */
  onUploadProgress?: (sent: number, total: number) => void;
}

/** What to do next, for the service errors a person meets most. */
const hints: Record<string, string> = {
  ResourceNotFoundException: 'check the name with "hearth ls"',
  ResourceConflictException: 'wait a moment and try again, or pick another name',
  AccessDeniedException: 'pass --token or set HEARTH_TOKEN',
  UnrecognizedClientException: 'the token was refused: check --token or HEARTH_TOKEN',
  InvalidSignatureException: 'pass --token or set HEARTH_TOKEN',
  TooManyRequestsException: 'the function is at its concurrency limit: try again shortly',
  RequestTooLargeException: 'make the package or payload smaller',
  CodeStorageExceededException: 'delete functions you no longer need ("hearth rm NAME")',
  InvalidZipFileException: 'check the files in the function folder',
};

/** The gateway over HTTP: the only way the CLI reaches the platform. */
export class GatewayClient {
  constructor(private readonly settings: Settings) {}

  get url(): string {
    return this.settings.url;
  }

  async request(method: string, path: string, options: RequestOptions = {}): Promise<GatewayResponse> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.settings.token) headers.authorization = `Bearer ${this.settings.token}`;
    let body: RequestInit['body'] | undefined;
    if (options.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = options.onUploadProgress
        ? withProgress(Buffer.from(options.body), options.onUploadProgress)
        : options.body;
    }
    let response: Response;
    try {
      response = await fetch(`${this.settings.url}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body, duplex: 'half' } : {}),
      } as RequestInit);
    } catch (error) {
      const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
      throw new CliError(
        `cannot reach the gateway at ${this.settings.url} (${cause}): start it with "hearth dev", or pass --url / set HEARTH_URL`,
      );
    }
    return {
      status: response.status,
      headers: response.headers,
      body: Buffer.from(await response.arrayBuffer()),
    };
  }

  /** A JSON call; a service error becomes a CliError with its Lambda code and a next step. */
  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(method, path, options);
    if (response.status >= 400) throw serviceError(response);
    if (response.body.length === 0) return undefined as T;
    return JSON.parse(response.body.toString('utf8')) as T;
  }
}

export function serviceError(response: GatewayResponse): CliError {
  const code = response.headers.get('x-amzn-errortype') ?? `HTTP ${response.status}`;
  let message = response.body.toString('utf8');
  try {
    const parsed = JSON.parse(message) as { message?: string; Message?: string };
    message = parsed.message ?? parsed.Message ?? message;
  } catch {
    // not JSON: show the text as it is
  }
  const hint = hints[code];
  const exitCode =
    response.status === 404 ? ExitCode.notFound : response.status === 400 ? ExitCode.usage : ExitCode.failure;
  return new CliError(`${code}: ${message}${hint ? `\n  next: ${hint}` : ''}`, exitCode);
}

/** A request body that reports how much of it has been taken by the connection. */
function withProgress(
  data: Buffer,
  onProgress: (sent: number, total: number) => void,
): ReadableStream<Uint8Array> {
  const chunk = 256 * 1024;
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= data.length) {
        controller.close();
        return;
      }
      const next = data.subarray(offset, offset + chunk);
      offset += next.length;
      controller.enqueue(next);
      onProgress(offset, data.length);
    },
  });
}
