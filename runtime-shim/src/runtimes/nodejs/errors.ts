/** Error shapes of AWS's Node.js runtime: `{"errorType","errorMessage","trace":[...]}`. */
import { types } from 'node:util';
import type { ErrorReport } from './runtime-api.js';

/** An error the runtime itself raises; its name is the Lambda error type, e.g. `Runtime.HandlerNotFound`. */
export class RuntimeError extends Error {
  constructor(errorType: string, message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = errorType;
  }
}

function looksLikeError(value: unknown): value is Error {
  return (
    types.isNativeError(value) ||
    (typeof value === 'object' &&
      value !== null &&
      typeof (value as Error).name === 'string' &&
      typeof (value as Error).message === 'string' &&
      typeof (value as Error).stack === 'string')
  );
}

/**
 * What the platform receives for a failed invocation. As on AWS, a thrown value that is not an
 * Error still makes a proper report: its type (`string`, `object`, ...) becomes the errorType.
 */
export function toErrorReport(error: unknown): ErrorReport {
  try {
    if (looksLikeError(error)) {
      return {
        errorType: error.name,
        errorMessage: error.message,
        trace: (error.stack ?? '').split('\n'),
      };
    }
    return { errorType: typeof error, errorMessage: String(error), trace: [] };
  } catch {
    return {
      errorType: 'handled',
      errorMessage:
        'callback called with Error argument, but there was a problem while retrieving one or more of its message, name, and stack',
    };
  }
}

/** An error as one log record: `<name>: <message>` and its stack, or the JSON report. */
export function formatForLog(error: unknown): string {
  if (looksLikeError(error)) return error.stack ?? `${error.name}: ${error.message}`;
  return JSON.stringify(toErrorReport(error));
}
