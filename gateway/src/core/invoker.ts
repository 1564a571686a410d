/**
 * The sync invocation path as one interface: the HTTP routes and the async workers both call it.
 */
export interface InvokeRequest {
  /** The function's name (already parsed out of a name, `name:qualifier` or ARN). */
  functionName: string;
  qualifier?: string;
  requestId: string;
  payload: Buffer;
  /** Base64 JSON, as in X-Amz-Client-Context. */
  clientContext?: string;
  /** Ask for the last 4 KB of the log. */
  logTail?: boolean;
  /** 'async' calls come from the queue's workers. */
  source: 'sync' | 'async';
}

export interface InvokeResult {
  /** The function's result bytes, or its error JSON when functionError is set. */
  payload: Buffer;
  functionError?: 'Unhandled';
  /** errorType of a failed invocation (e.g. Sandbox.Timedout). */
  errorType?: string;
  executedVersion: string;
  /** Base64 log tail, when asked for. */
  logResult?: string;
  initDurationMs?: number;
  durationMs: number;
}

/** Runs a call on an instance; throws GatewayError for throttles, unknown or unready functions. */
export interface Invoker {
  invoke(request: InvokeRequest): Promise<InvokeResult>;
}
