import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
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

/** Calls `POST /invoke` on instances over kept-alive connections. */
export class ShimClient {
  // Idle connections are closed after 2 s, before the shim's own keep-alive timeout (Node's
  // 5 s) could close one just as a call is written to it: such a failure could not be told
  // apart from an instance dying mid-call, and a call is never sent twice. The timeout applies
  // to idle connections only; a running call's connection waits as long as the call.
  private readonly agent = new Agent({ keepAlive: true, timeout: 2000, scheduling: 'lifo' });

  close(): void {
    this.agent.destroy();
  }

  invoke(baseUrl: string, call: ShimCall): Promise<ShimAnswer> {
    const url = new URL(ShimPaths.invoke, baseUrl);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': call.payload.length,
      [ShimHeaders.requestId]: call.requestId,
      [ShimHeaders.deadlineMs]: call.deadlineMs,
      [ShimHeaders.invokedFunctionArn]: call.invokedFunctionArn,
    };
    if (call.clientContext) headers[ShimHeaders.clientContext] = call.clientContext;
    if (call.logTail) headers[ShimHeaders.logType] = 'Tail';
    return new Promise<ShimAnswer>((resolve, reject) => {
      let answered = false;
      const req = httpRequest(url, { method: 'POST', headers, agent: this.agent });
      const timeoutMs = Math.max(0, call.deadlineMs - Date.now()) + DEADLINE_GRACE_MS;
      const timer = setTimeout(() => {
        req.destroy(new ShimCallError('failed', `the instance gave no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      req.on('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (error instanceof ShimCallError) return reject(error);
        if (
          !answered &&
          (error.code === 'ECONNREFUSED' || error.code === 'EHOSTUNREACH' || error.code === 'ENOTFOUND')
        ) {
          return reject(new ShimCallError('unreachable', `instance unreachable: ${error.code}`));
        }
        reject(new ShimCallError('failed', `instance connection failed: ${error.code ?? error.message}`));
      });
      req.on('response', (res) => {
        answered = true;
        readAnswer(res).then(
          (body) => {
            clearTimeout(timer);
            const answer = toAnswer(res, body);
            if (answer instanceof ShimCallError) reject(answer);
            else resolve(answer);
          },
          (error: Error) => {
            clearTimeout(timer);
            reject(
              error instanceof ShimCallError
                ? error
                : new ShimCallError('failed', `instance answer broke off: ${error.message}`),
            );
          },
        );
      });
      req.end(call.payload);
    });
  }
}

function readAnswer(res: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_ANSWER_BYTES) {
        res.destroy(new ShimCallError('failed', `instance answer exceeded ${MAX_ANSWER_BYTES} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    res.on('end', () => resolve(Buffer.concat(chunks, size)));
    res.on('error', reject);
    res.on('aborted', () => reject(new ShimCallError('failed', 'instance answer aborted')));
  });
}

/** Maps the shim's answer; a 503 is a refusal, any other non-200 a failure. */
function toAnswer(res: IncomingMessage, body: Buffer): ShimAnswer | ShimCallError {
  const header = (name: string) => {
    const value = res.headers[name];
    return typeof value === 'string' ? value : undefined;
  };
  if (res.statusCode === 503) {
    return new ShimCallError(
      'refused',
      `instance refused the call: ${header(ShimHeaders.errorType) ?? SHIM_UNAVAILABLE}`,
    );
  }
  if (res.statusCode !== 200) {
    return new ShimCallError('failed', `instance answered ${res.statusCode}`);
  }
  const number = (name: string) => {
    const value = header(name);
    return value === undefined || value === '' || !Number.isFinite(Number(value)) ? undefined : Number(value);
  };
  const answer: ShimAnswer = { payload: body };
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
