/**
 * The gateway-to-instance protocol: what the gateway sends to a runtime shim's `POST /invoke`
 * and what comes back. Every header is lower case, prefixed `x-hearth-`.
 *
 * Request: body = the event bytes.
 * Response: 200 whenever the function ran (even when it failed: `function-error` says so);
 * body = the function's result bytes, or its error JSON. 503 (with `ShimUnavailable`) when the
 * instance is draining or not ready; the caller may try another instance.
 */
export const ShimHeaders = {
  /** Request id (Lambda's awsRequestId). */
  requestId: 'x-hearth-request-id',
  /** Absolute deadline in epoch ms; the shim also caps it by the function's timeout. */
  deadlineMs: 'x-hearth-deadline-ms',
  /** Base64 JSON client context, as in X-Amz-Client-Context. */
  clientContext: 'x-hearth-client-context',
  /** Cognito identity JSON (rarely used). */
  cognitoIdentity: 'x-hearth-cognito-identity',
  invokedFunctionArn: 'x-hearth-invoked-function-arn',
  traceId: 'x-hearth-trace-id',
  /** `Tail` asks for the last 4 KB of the invocation's log in `log-result`. */
  logType: 'x-hearth-log-type',

  // Response headers
  /** `Unhandled` when the function failed (the body is the error JSON). */
  functionError: 'x-hearth-function-error',
  /** The errorType of a failed invocation, e.g. `Sandbox.Timedout`. */
  errorType: 'x-hearth-error-type',
  /** Present only on a cold start: init duration in ms (decimal). */
  initDurationMs: 'x-hearth-init-duration-ms',
  durationMs: 'x-hearth-duration-ms',
  billedDurationMs: 'x-hearth-billed-duration-ms',
  maxMemoryUsedMb: 'x-hearth-max-memory-used-mb',
  /** Base64 of the last 4 KB of the invocation's log, when asked for. */
  logResult: 'x-hearth-log-result',
  /** The revision of the instance that served the call. */
  revision: 'x-hearth-revision',
} as const;

export const ShimPaths = {
  invoke: '/invoke',
  healthz: '/healthz',
  readyz: '/readyz',
} as const;

/**
 * The shim's settings, passed in its environment. Everything else in its environment that does
 * not start with `HEARTH_` is the function's own environment and goes to the runtime.
 */
export const ShimEnv = {
  functionName: 'HEARTH_FUNCTION_NAME',
  functionVersion: 'HEARTH_FUNCTION_VERSION',
  revision: 'HEARTH_REVISION',
  runtime: 'HEARTH_RUNTIME',
  handler: 'HEARTH_HANDLER',
  codeDir: 'HEARTH_CODE_DIR',
  memoryMb: 'HEARTH_MEMORY_MB',
  timeoutSeconds: 'HEARTH_TIMEOUT_SECONDS',
  ephemeralStorageMb: 'HEARTH_EPHEMERAL_STORAGE_MB',
  port: 'HEARTH_PORT',
  host: 'HEARTH_HOST',
  region: 'HEARTH_REGION',
  /** Calls the instance takes at once (`concurrency.perInstance`). */
  concurrency: 'HEARTH_CONCURRENCY',
  /**
   * Calls one runtime process takes at once (`concurrency.perRuntime`, default 1, as on Lambda;
   * more is Lambda Managed Instances' multi-concurrency, given to the runtime as
   * AWS_LAMBDA_MAX_CONCURRENCY): the instance runs ceil(concurrency / this) runtime processes.
   */
  perRuntime: 'HEARTH_PER_RUNTIME_CONCURRENCY',
  /** Where the shim keeps the instance's private /tmp image and scratch files. */
  stateDir: 'HEARTH_STATE_DIR',
  logLevel: 'HEARTH_LOG_LEVEL',
  /**
   * `auto` (default): the strongest isolation the host allows (cgroup memory limit, private
   * loop-mounted `/tmp`); `portable`: never needs root (RSS polling, a `TMPDIR` directory).
   */
  isolation: 'HEARTH_ISOLATION',
  /**
   * A directory that is the instance's own `/tmp` (on Kubernetes the pod's size-limited
   * emptyDir, so `/tmp` itself): with `/tmp` by directory, the shim watches and wipes this one
   * (its contents) instead of a `TMPDIR` of its own. Unset: a per-runtime `TMPDIR`.
   */
  tmpDir: 'HEARTH_TMP_DIR',
  /**
   * For a provided runtime: the runtime's command as a JSON array of strings, in place of
   * `<code dir>/bootstrap` (an image function's entry point and command).
   */
  runtimeCommand: 'HEARTH_RUNTIME_COMMAND',
  /**
   * `1`: stop (as on SIGTERM) when stdin closes. The process backend keeps the other end of that
   * pipe, so its shims end with it however it ends, SIGKILL included (a pod's containers end
   * with the pod; local processes have no such bond otherwise).
   */
  stopWithStdin: 'HEARTH_STOP_WITH_STDIN',
  /** Init phase limit in ms (Lambda's 10 s by default); lower only in tests. */
  initTimeoutMs: 'HEARTH_INIT_TIMEOUT_MS',
} as const;

/**
 * The function's variables reach the shim as its own environment, and the shim hands them to the
 * runtime. Those that Node.js reads as it starts (`NODE_OPTIONS` can `--require` the function's
 * code, `NODE_EXTRA_CA_CERTS` makes every start slower) would act on the shim's own Node first:
 * they reach it with this prefix instead, and the runtime gets them under their own names.
 */
export const FUNCTION_ENV_PREFIX = 'HEARTH_ENV_';

/** Runtime processes one instance runs at most: ceil(perInstance / perRuntime). */
export const MAX_RUNTIMES_PER_INSTANCE = 64;

/**
 * The shim settings of a function's `concurrency`. Calls per runtime only when above 1, so that
 * an instance of a function without them starts exactly as before they existed.
 */
export function concurrencyEnv(concurrency: {
  perInstance: number;
  perRuntime?: number;
}): Record<string, string> {
  const perRuntime = concurrency.perRuntime ?? 1;
  return {
    [ShimEnv.concurrency]: String(concurrency.perInstance),
    ...(perRuntime > 1 ? { [ShimEnv.perRuntime]: String(perRuntime) } : {}),
  };
}

/** The runtime processes an instance needs for `perInstance` calls at `perRuntime` each. */
export function runtimesPerInstance(concurrency: { perInstance: number; perRuntime: number }): number {
  return Math.ceil(concurrency.perInstance / concurrency.perRuntime);
}

/** The name under which the shim's process is given the function's variable `name`. */
export function shimEnvName(name: string): string {
  return name.startsWith('NODE_') ? FUNCTION_ENV_PREFIX + name : name;
}

/** The `x-hearth-error-type` of a 503: this instance cannot take the call, another one may. */
export const SHIM_UNAVAILABLE = 'ShimUnavailable';
