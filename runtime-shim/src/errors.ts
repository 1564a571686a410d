import { FunctionErrorType, Limits } from '@hearth/api/lambda';

/** An invocation the platform ended, carrying Lambda's error type for the answer body. */
export class LambdaError extends Error {
  constructor(
    readonly errorType: string,
    message: string,
  ) {
    super(message);
    this.name = 'LambdaError';
  }

  /** Lambda's error body: `{"errorType","errorMessage"}`. */
  toBody(): Buffer {
    return Buffer.from(JSON.stringify({ errorType: this.errorType, errorMessage: this.message }));
  }
}

// Go's wording (Lambda's runtime manager is written in Go): "signal: killed" and friends.
const SIGNAL_WORDS: Partial<Record<NodeJS.Signals, string>> = {
  SIGKILL: 'killed',
  SIGTERM: 'terminated',
  SIGABRT: 'aborted',
  SIGSEGV: 'segmentation fault',
  SIGBUS: 'bus error',
  SIGILL: 'illegal instruction',
  SIGINT: 'interrupt',
  SIGFPE: 'floating point exception',
};

/** `exit status 1` or `signal: killed`, as Lambda words a runtime's end. */
export function exitDescription(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `signal: ${SIGNAL_WORDS[signal] ?? signal}`;
  return `exit status ${code ?? 0}`;
}

export function timedOut(requestId: string, seconds: number): LambdaError {
  return new LambdaError(
    FunctionErrorType.timedOut,
    `RequestId: ${requestId} Error: Task timed out after ${seconds.toFixed(2)} seconds`,
  );
}

export function runtimeExited(
  requestId: string,
  exit: { code: number | null; signal: NodeJS.Signals | null },
  outOfMemory?: { limitMb: number },
): LambdaError {
  let message = `RequestId: ${requestId} Error: Runtime exited with error: ${exitDescription(exit.code, exit.signal)}`;
  if (outOfMemory) message += ` (out of memory: the function reached its limit of ${outOfMemory.limitMb} MB)`;
  return new LambdaError(FunctionErrorType.exitError, message);
}

export function initTimedOut(seconds: number): LambdaError {
  return new LambdaError(
    FunctionErrorType.initTimeout,
    `Init phase timed out after ${seconds.toFixed(2)} seconds`,
  );
}

export function ephemeralStorageFull(requestId: string, limitMb: number): LambdaError {
  return new LambdaError(
    FunctionErrorType.ephemeralStorageFull,
    `RequestId: ${requestId} Error: /tmp is full: the function wrote past its ephemeral storage of ${limitMb} MB`,
  );
}

export function responseTooLarge(): LambdaError {
  return new LambdaError(
    FunctionErrorType.responseTooLarge,
    `Response payload size exceeded maximum allowed payload size (${Limits.responseBytes} bytes).`,
  );
}
