/**
 * A client for the Lambda Runtime API as AWS documents it
 * (`http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/...`).
 *
 * One keep-alive connection carries every call: the runtime asks for the next event, answers it
 * and asks again, so a warm invocation costs two requests on an open socket and nothing more.
 * The bootstrap imports only Node built-ins (it runs in function images without our
 * node_modules), so the header names are spelt out here rather than imported from `@hearth/api`.
 */
import { Agent, request, type IncomingHttpHeaders } from 'node:http';

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

interface StaleSocketError {
  staleSocket?: boolean;
}

// An idle keep-alive socket is unref'd by the Agent, so it never keeps the event loop alive:
// `beforeExit` still fires when the handler's own work is done.
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

export class RuntimeApiClient {
  private readonly host: string;
  private readonly port: number;

  constructor(address: string) {
    const separator = address.lastIndexOf(':');
    this.host = separator > 0 ? address.slice(0, separator) : address;
    this.port = separator > 0 ? Number(address.slice(separator + 1)) : 80;
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
    await this.expectAccepted(await this.call('POST', path, body));
  }

  async postError(requestId: string, report: ErrorReport): Promise<void> {
    const path = `/2018-06-01/runtime/invocation/${encodeURIComponent(requestId)}/error`;
    await this.expectAccepted(await this.call('POST', path, JSON.stringify(report), report.errorType));
  }

  async postInitError(report: ErrorReport): Promise<void> {
    await this.expectAccepted(
      await this.call('POST', '/2018-06-01/runtime/init/error', JSON.stringify(report), report.errorType),
    );
  }

  private async expectAccepted(answer: { status: number; body: string }) {
    // 4xx means this report was refused (already answered, unknown id, too large): the platform
    // has decided the invocation's outcome, and the runtime carries on. 5xx means the platform
    // is broken, and the documented reaction is to exit.
    if (answer.status >= 500) throw new Error(`Runtime API answered ${answer.status}: ${answer.body}`);
    if (answer.status !== 202)
      process.stderr.write(`Runtime API answered ${answer.status}: ${answer.body}\n`);
  }

  private async call(
    method: string,
    path: string,
    body?: string,
    functionErrorType?: string,
  ): Promise<Answer> {
    try {
      return await this.send(method, path, body, functionErrorType);
    } catch (error) {
      // A server may close a keep-alive connection while it sits idle during a long invocation;
      // a request that meets that closing socket goes again on a new one, once.
      if ((error as StaleSocketError).staleSocket) return this.send(method, path, body, functionErrorType);
      throw error;
    }
  }

  private send(method: string, path: string, body?: string, functionErrorType?: string): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = {};
      if (body !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(body);
      }
      // Header values cannot carry control characters; an error type is a short identifier anyway.
      if (functionErrorType)
        headers['lambda-runtime-function-error-type'] = functionErrorType.replace(/[^\x20-\x7e]/g, '');
      const outgoing = request(
        { host: this.host, port: this.port, method, path, headers, agent },
        (incoming) => {
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.on('end', () =>
            resolve({
              status: incoming.statusCode ?? 0,
              headers: incoming.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
          incoming.on('error', reject);
        },
      );
      outgoing.on('error', (error: NodeJS.ErrnoException & StaleSocketError) => {
        error.staleSocket = outgoing.reusedSocket && error.code === 'ECONNRESET';
        reject(error);
      });
      outgoing.end(body);
    });
  }
}
