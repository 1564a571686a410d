/**
 * Hearth's Node.js runtime (nodejs20.x, nodejs22.x): loads the function's handler, then loops on
 * the Lambda Runtime API, running one invocation at a time, the way AWS's Node.js runtime does.
 *
 * An invocation ends when the handler's promise settles, when its callback is called (after the
 * event loop drains, unless `context.callbackWaitsForEmptyEventLoop` is false), when it calls
 * `context.succeed/fail/done`, or, if none of these happen, with `null` once the event loop is
 * empty. An uncaught exception or unhandled rejection fails the invocation and ends the process
 * (the platform starts a fresh one), since the module's state can no longer be trusted.
 */
import { closeSync, readSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { SANDBOX_FAILED_EXIT_CODE, TMP_READY_FD_VARIABLE } from '../launch-protocol.js';
import { buildContext, functionSettingsFromEnv, type Completion } from './context.js';
import { formatForLog, RuntimeError, toErrorReport } from './errors.js';
import { loadHandler, type Handler } from './handler.js';
import { patchConsole, setLogRequestId } from './logging.js';
import { RuntimeApiClient, type ErrorReport, type Invocation } from './runtime-api.js';

/** AWS's Node.js runtime exits with this code after an uncaught error; so does this one. */
const FATAL_EXIT_CODE = 129;

type Outcome = { result: unknown } | { error: unknown };

const runtimeApiAddress = process.env.AWS_LAMBDA_RUNTIME_API;
if (!runtimeApiAddress) {
  process.stderr.write('AWS_LAMBDA_RUNTIME_API is not set: this program runs under a Lambda Runtime API\n');
  process.exit(1);
}
const client = new RuntimeApiClient(runtimeApiAddress);
const settings = functionSettingsFromEnv(process.env);

let initializing = true;
/** Reports the outcome of the invocation in progress, if one is in progress. */
let reportCurrent: ((outcome: Outcome) => Promise<void> | undefined) | undefined;
/** What happens once the handler's work has drained the event loop. */
let onEmptyEventLoop: (() => void) | undefined;
let exiting = false;
/** The next event, asked for together with the last invocation's answer. */
let prefetchedNext: Promise<Invocation> | undefined;

process.on('beforeExit', () => {
  const action = onEmptyEventLoop;
  onEmptyEventLoop = undefined;
  action?.();
});
process.on('uncaughtException', (error) => fail('Uncaught Exception', error));
process.on('unhandledRejection', (reason) => {
  const error = new RuntimeError('Runtime.UnhandledPromiseRejection', String(reason), reason);
  if (reason instanceof Error && reason.stack)
    error.stack = `${error.name}: ${error.message}\n${reason.stack}`;
  fail('Unhandled Promise Rejection', error);
});

/** Reports an error nothing caught against the invocation (or init) it belongs to, then exits. */
function fail(label: string, error: unknown) {
  if (exiting) return;
  exiting = true;
  onEmptyEventLoop = undefined;
  console.error(label, formatForLog(error));
  const posted = initializing ? client.postInitError(toErrorReport(error)) : reportCurrent?.({ error });
  void Promise.resolve(posted)
    .catch(() => undefined)
    .then(() => process.exit(FATAL_EXIT_CODE));
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

function serialise(result: unknown): string {
  return JSON.stringify(result) ?? 'null';
}

function setInvocationEnvironment(requestId: string, headers: IncomingHttpHeaders) {
  setLogRequestId(requestId);
  const traceId = headers['lambda-runtime-trace-id'];
  if (typeof traceId === 'string') process.env._X_AMZN_TRACE_ID = traceId;
  else delete process.env._X_AMZN_TRACE_ID;
}

/** Runs one invocation; resolves once its outcome has been posted. */
function invoke(handler: Handler, { requestId, headers, body }: Invocation): Promise<void> {
  setInvocationEnvironment(requestId, headers);
  return new Promise<void>((resolveInvocation, rejectInvocation) => {
    let reported = false;
    const report = (outcome: Outcome): Promise<void> | undefined => {
      if (reported) {
        console.error(
          'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
        );
        return undefined;
      }
      reported = true;
      reportCurrent = undefined;
      onEmptyEventLoop = undefined;
      let body: string | undefined;
      let errorReport: ErrorReport | undefined;
      if ('result' in outcome) {
        try {
          body = serialise(outcome.result);
        } catch (cause) {
          const error = new RuntimeError(
            'Runtime.MarshalError',
            `Unable to stringify response body: ${String(cause)}`,
          );
          console.error('Invoke Error', formatForLog(error));
          errorReport = toErrorReport(error);
        }
      } else {
        errorReport = toErrorReport(outcome.error);
      }
      let posted!: Promise<void>;
      // The answer and the request for the next event leave in one write, unless this process
      // is on its way out after a fatal error.
      client.batch(() => {
        posted =
          body !== undefined
            ? client.postResponse(requestId, body)
            : client.postError(requestId, errorReport!);
        if (!exiting) prefetchedNext = client.nextInvocation();
      });
      // Awaited by the main loop once this invocation is over; a failure shows there.
      prefetchedNext?.catch(() => undefined);
      posted.then(resolveInvocation, rejectInvocation);
      return posted;
    };
    const reportError = (error: unknown) => {
      if (!reported) console.error('Invoke Error', formatForLog(error));
      report({ error });
    };
    reportCurrent = report;

    const completion: Completion = {
      callbackWaitsForEmptyEventLoop: true,
      succeed: (result) => completion.done(null, result),
      // AWS reports `fail()` without an argument as the string "handled".
      fail: (error) => completion.done(error ?? 'handled'),
      done: (error, result) => {
        onEmptyEventLoop = undefined;
        if (error !== undefined && error !== null) reportError(error);
        else report({ result });
      },
    };
    const callback = (error?: unknown, result?: unknown) => {
      if (error !== undefined && error !== null) {
        reportError(error);
      } else if (!completion.callbackWaitsForEmptyEventLoop) {
        report({ result });
      } else {
        // Timers, sockets and the like the handler left running finish before the answer goes out.
        onEmptyEventLoop = () => setImmediate(() => report({ result }));
      }
    };
    // A handler that neither returns a promise nor calls back answers null once it has no work left.
    onEmptyEventLoop = () => report({ result: null });

    try {
      const event: unknown = JSON.parse(body);
      const returned = handler(event, buildContext(settings, requestId, headers, completion), callback);
      if (isPromiseLike(returned)) returned.then(completion.succeed, completion.fail);
    } catch (error) {
      reportError(error);
    }
  });
}

/**
 * Started while the launcher still makes the private /tmp: blocks until the launcher's status
 * arrives, before any of the function's code is loaded.
 */
function waitForTmp() {
  const fd = Number(process.env[TMP_READY_FD_VARIABLE]);
  if (!fd) return;
  delete process.env[TMP_READY_FD_VARIABLE];
  const status = Buffer.alloc(16);
  let length = 0;
  try {
    length = readSync(fd, status, 0, status.length, null);
    closeSync(fd);
  } catch (error) {
    process.stderr.write(`hearth: the sandbox's status could not be read: ${formatForLog(error)}\n`);
    process.exit(SANDBOX_FAILED_EXIT_CODE);
  }
  if (status.toString('latin1', 0, length) !== '0\n') {
    process.stderr.write('hearth: the private /tmp could not be made\n');
    process.exit(SANDBOX_FAILED_EXIT_CODE);
  }
}

async function main() {
  waitForTmp();
  patchConsole();
  let handler: Handler;
  try {
    handler = await loadHandler(process.env.LAMBDA_TASK_ROOT ?? process.cwd(), process.env._HANDLER ?? '');
  } catch (error) {
    fail('Init Error', error);
    return;
  }
  initializing = false;
  // After a fatal error the process is on its way out: it must not take another event.
  while (!exiting) {
    const next = prefetchedNext ?? client.nextInvocation();
    prefetchedNext = undefined;
    await invoke(handler, await next);
  }
}

main().catch((error: unknown) => {
  // Only the Runtime API itself failing gets here (unreachable, or a 5xx): nothing to report to.
  process.stderr.write(`Runtime API failed: ${formatForLog(error)}\n`);
  process.exit(FATAL_EXIT_CODE);
});
