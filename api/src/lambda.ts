/** Lambda's limits, error types and header names, as in the shared LAMBDA.md. */

export const Limits = {
  syncPayloadBytes: 6_291_456,
  asyncPayloadBytes: 1_048_576,
  responseBytes: 6_291_456,
  logTailBytes: 4096,
  initTimeoutMs: 10_000,
  memoryMb: { min: 128, max: 10_240, default: 128 },
  timeoutSeconds: { min: 1, max: 900, default: 3 },
  ephemeralStorageMb: { min: 512, max: 10_240, default: 512 },
  clientContextBytes: 3583,
  envVarsBytes: 4096,
  accountConcurrency: 1000,
  /** Lambda gives one vCPU per 1769 MB of memory. */
  memoryMbPerVcpu: 1769,
} as const;

export const Runtimes = ['nodejs20.x', 'nodejs22.x', 'python3.11', 'provided.al2023'] as const;
export type Runtime = (typeof Runtimes)[number];
/**
 * Runtimes whose process can run several calls at once when given AWS_LAMBDA_MAX_CONCURRENCY (as
 * on Lambda Managed Instances, where Python instead runs a process per concurrent call).
 */
export const MultiConcurrentRuntimes: readonly Runtime[] = ['nodejs20.x', 'nodejs22.x', 'provided.al2023'];

/** Error types a function invocation can end with (the body's errorType). */
export const FunctionErrorType = {
  timedOut: 'Sandbox.Timedout',
  responseTooLarge: 'Function.ResponseSizeTooLarge',
  exitError: 'Runtime.ExitError',
  outOfMemory: 'Runtime.OutOfMemory',
  importModule: 'Runtime.ImportModuleError',
  handlerNotFound: 'Runtime.HandlerNotFound',
  userCodeSyntax: 'Runtime.UserCodeSyntaxError',
  initTimeout: 'Runtime.InitTimeout',
  ephemeralStorageFull: 'Runtime.EphemeralStorageFull',
  unknown: 'Runtime.Unknown',
} as const;

/** Service errors: the `x-amzn-ErrorType` code and its status. */
export const ServiceErrors = {
  ResourceNotFoundException: 404,
  InvalidRequestContentException: 400,
  InvalidParameterValueException: 400,
  RequestTooLargeException: 413,
  UnsupportedMediaTypeException: 415,
  ResourceConflictException: 409,
  TooManyRequestsException: 429,
  ServiceException: 500,
  ResourceNotReadyException: 502,
  InvalidRuntimeException: 502,
  InvalidZipFileException: 502,
  CodeStorageExceededException: 400,
  AccessDeniedException: 403,
  InvalidSignatureException: 403,
  UnrecognizedClientException: 403,
} as const;
export type ServiceErrorCode = keyof typeof ServiceErrors;

export const InvokeHeaders = {
  invocationType: 'x-amz-invocation-type',
  logType: 'x-amz-log-type',
  clientContext: 'x-amz-client-context',
  executedVersion: 'x-amz-executed-version',
  requestId: 'x-amzn-requestid',
  logResult: 'x-amz-log-result',
  functionError: 'x-amz-function-error',
  errorType: 'x-amzn-errortype',
  /**
   * Hearth's own: an Event call's request id chosen by the caller (a UUID), for a caller that may
   * send the same event twice (a schedule's tick); the async queue takes it once.
   */
  callerRequestId: 'x-hearth-request-id',
} as const;

export const RuntimeApiHeaders = {
  requestId: 'lambda-runtime-aws-request-id',
  deadlineMs: 'lambda-runtime-deadline-ms',
  invokedFunctionArn: 'lambda-runtime-invoked-function-arn',
  traceId: 'lambda-runtime-trace-id',
  clientContext: 'lambda-runtime-client-context',
  cognitoIdentity: 'lambda-runtime-cognito-identity',
  functionErrorType: 'lambda-runtime-function-error-type',
} as const;

export const RUNTIME_API_VERSION = '2018-06-01';

/** The error body a function error or a platform-ended invocation carries. */
export interface FunctionErrorBody {
  errorType: string;
  errorMessage: string;
  trace?: string[];
  stackTrace?: string[];
}

export function functionArn(
  name: string,
  region = 'us-east-1',
  account = '000000000000',
  qualifier?: string,
) {
  return `arn:aws:lambda:${region}:${account}:function:${name}${qualifier ? `:${qualifier}` : ''}`;
}
