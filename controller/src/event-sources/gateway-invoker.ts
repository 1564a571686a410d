import { Agent, request } from 'undici';
import { InvokeHeaders } from '@hearth/api';
import { JsonText, type FunctionInvoker, type InvokeOutcome } from './types.js';

export interface GatewayInvokerOptions {
  /** The gateway's base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** An API key of the gateway (Authorization: Bearer), when its auth is on. */
  token?: string;
  /** Longest a sync call may take: the function's timeout plus the gateway's cold-start budget. */
  requestTimeoutMs?: number;
}

/** Reads Retry-After (seconds) into ms, with a floor so that a poller never spins. */
export function retryAfterMs(header: string | string[] | undefined): number {
  const seconds = Number(Array.isArray(header) ? header[0] : header);
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 1000;
}

/**
 * Invokes functions through the gateway's Lambda Invoke API, so that pollers and schedules go
 * through the same admission, routing and scaling as every other caller.
 */
export class GatewayInvoker implements FunctionInvoker {
  private readonly agent: Agent;

  constructor(private readonly options: GatewayInvokerOptions) {
    this.agent = new Agent({
      keepAliveTimeout: 30_000,
      headersTimeout: options.requestTimeoutMs ?? 960_000,
      bodyTimeout: options.requestTimeoutMs ?? 960_000,
    });
  }

  async invoke(
    functionName: string,
    payload: unknown,
    options: { async?: boolean; requestId?: string } = {},
  ): Promise<InvokeOutcome> {
    const url = `${this.options.url.replace(/\/$/, '')}/2015-03-31/functions/${encodeURIComponent(functionName)}/invocations`;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'x-amz-invocation-type': options.async ? 'Event' : 'RequestResponse',
    };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    if (options.requestId) headers[InvokeHeaders.callerRequestId] = options.requestId;
    let response;
    try {
      response = await request(url, {
        method: 'POST',
        headers,
        body: payload instanceof JsonText ? payload.text : JSON.stringify(payload),
        dispatcher: this.agent,
      });
    } catch (error) {
      return { kind: 'unavailable', message: `gateway unreachable: ${(error as Error).message}` };
    }
    const body = await response.body.text();
    if (response.statusCode === 429) {
      return { kind: 'throttled', retryAfterMs: retryAfterMs(response.headers['retry-after']) };
    }
    if (response.statusCode >= 300) {
      return { kind: 'unavailable', status: response.statusCode, message: body.slice(0, 500) };
    }
    const functionError = response.headers['x-amz-function-error'];
    if (functionError) {
      let errorType = String(functionError);
      try {
        errorType = (JSON.parse(body) as { errorType?: string }).errorType ?? errorType;
      } catch {
        // Not JSON: the header's value is all we know.
      }
      return { kind: 'functionError', errorType, payload: body };
    }
    return { kind: 'success', payload: body };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
