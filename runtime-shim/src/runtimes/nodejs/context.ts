/** The `context` argument of a Node.js handler, as AWS's runtime builds it. */
import type { IncomingHttpHeaders } from 'node:http';

/** What stays the same for every invocation of this runtime process. */
export interface FunctionSettings {
  functionName: string | undefined;
  functionVersion: string | undefined;
  memoryLimitInMB: string | undefined;
  logGroupName: string | undefined;
  logStreamName: string | undefined;
}

export function functionSettingsFromEnv(env: NodeJS.ProcessEnv): FunctionSettings {
  return {
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    // A string, as on AWS: handlers written there call Number() or parseInt() on it.
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
  };
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** Client context and Cognito identity arrive as JSON text; a value that is not JSON is left out. */
function parseJsonHeader(value: string | undefined): unknown {
  if (value === undefined || value === '') return undefined;
  try {
    return JSON.parse(value);
  } catch {
    return undefined;
  }
}

/** The completion functions the invocation supplies: legacy `succeed` / `fail` / `done`. */
export interface Completion {
  succeed(result?: unknown): void;
  fail(error?: unknown): void;
  done(error?: unknown, result?: unknown): void;
  callbackWaitsForEmptyEventLoop: boolean;
}

export function buildContext(
  settings: FunctionSettings,
  requestId: string,
  headers: IncomingHttpHeaders,
  completion: Completion,
) {
  const deadlineMs = Number(header(headers, 'lambda-runtime-deadline-ms'));
  // The settings are listed rather than spread: a spread before the accessor below makes V8
  // build the object on its slow path, about five times the cost of the literal (~10 µs a call).
  return {
    functionName: settings.functionName,
    functionVersion: settings.functionVersion,
    memoryLimitInMB: settings.memoryLimitInMB,
    logGroupName: settings.logGroupName,
    logStreamName: settings.logStreamName,
    awsRequestId: requestId,
    invokedFunctionArn: header(headers, 'lambda-runtime-invoked-function-arn'),
    identity: parseJsonHeader(header(headers, 'lambda-runtime-cognito-identity')),
    clientContext: parseJsonHeader(header(headers, 'lambda-runtime-client-context')),
    getRemainingTimeInMillis: () => deadlineMs - Date.now(),
    get callbackWaitsForEmptyEventLoop() {
      return completion.callbackWaitsForEmptyEventLoop;
    },
    set callbackWaitsForEmptyEventLoop(value: boolean) {
      completion.callbackWaitsForEmptyEventLoop = value;
    },
    succeed: (result?: unknown) => completion.succeed(result),
    fail: (error?: unknown) => completion.fail(error),
    done: (error?: unknown, result?: unknown) => completion.done(error, result),
  };
}
