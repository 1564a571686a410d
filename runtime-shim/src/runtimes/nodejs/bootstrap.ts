/**
 * Hearth's Node.js runtime (nodejs20.x, nodejs22.x): loads the function's handler, then loops on
 * the Lambda Runtime API, running one invocation at a time, the way AWS's Node.js runtime does;
 * or, given AWS_LAMBDA_MAX_CONCURRENCY above 1 (Lambda Managed Instances), that many at once in
 * this one process, each on its own connection (see serveConcurrently).
 *
 * An invocation ends when the handler's promise settles, when its callback is called (after the
 * event loop drains, unless `context.callbackWaitsForEmptyEventLoop` is false), when it calls
 * `context.succeed/fail/done`, or, if none of these happen, with `null` once the event loop is
 * empty. An uncaught exception or unhandled rejection fails the invocation and ends the process
 * (the platform starts a fresh one), since the module's state can no longer be trusted.
 */
// First: it lets the rest load with Node.js's code cache (see code-cache.ts).
import { startFunctionCode } from './code-cache.js';
import { closeSync, readSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { SANDBOX_FAILED_EXIT_CODE, TMP_READY_FD_VARIABLE } from '../launch-protocol.js';
import { buildContext, functionSettingsFromEnv, type Completion } from './context.js';
import { formatForLog, RuntimeError, toErrorReport } from './errors.js';
import { loadHandler, type Handler } from './handler.js';
import { patchConsole, setLogRequestId, withLogRequestId } from './logging.js';
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

/** Invocations running at once (concurrent mode), each with the connection that answers it. */
const concurrentInvocations = new Map<string, RuntimeApiClient>();

/**
 * Reports an error nothing caught against the invocation (or init) it belongs to, then exits. In
 * concurrent mode it cannot tell which invocation it came from: every running one fails with it.
 */
function fail(label: string, error: unknown) {
  if (exiting) return;
  exiting = true;
  onEmptyEventLoop = undefined;
  console.error(label, formatForLog(error));
  const posted = initializing
    ? client.postInitError(toErrorReport(error))
    : concurrentInvocations.size > 0
      ? Promise.all(
          [...concurrentInvocations].map(([requestId, own]) =>
            withLogRequestId(requestId, () => own.postError(requestId, toErrorReport(error))),
          ),
        )
      : reportCurrent?.({ error });
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

/** What goes back to the Runtime API for an outcome: the result as JSON, or an error report. */
function answerOf(outcome: Outcome): { body: string } | { errorReport: ErrorReport } {
  if (!('result' in outcome)) return { errorReport: toErrorReport(outcome.error) };
  try {
    return { body: serialise(outcome.result) };
  } catch (cause) {
    const error = new RuntimeError(
      'Runtime.MarshalError',
      `Unable to stringify response body: ${String(cause)}`,
    );
    console.error('Invoke Error', formatForLog(error));
    return { errorReport: toErrorReport(error) };
  }
}

function postAnswer(
  own: RuntimeApiClient,
  requestId: string,
  answer: ReturnType<typeof answerOf>,
): Promise<void> {
  return 'body' in answer
    ? own.postResponse(requestId, answer.body)
    : own.postError(requestId, answer.errorReport);
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
      const answer = answerOf(outcome);
      let posted!: Promise<void>;
      // The answer and the request for the next event leave in one write, unless this process
      // is on its way out after a fatal error.
      client.batch(() => {
        posted = postAnswer(client, requestId, answer);
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

/**
 * Concurrent mode: `workers` loops on as many connections, each asking for an event, running it
 * and answering with the next request in the same write, as the one-at-a-time loop does. The
 * event loop is shared, so an invocation ends when its promise settles or it calls back or
 * `context.done` (never "once the event loop is empty"); a handler that does none of these runs
 * until its timeout. Trace ids are in `context` only: `_X_AMZN_TRACE_ID` would be one for all.
 */
async function serveConcurrently(handler: Handler, workers: number) {
  await Promise.all(
    Array.from({ length: workers }, async () => {
      const own = new RuntimeApiClient(runtimeApiAddress!);
      let next = own.nextInvocation();
      while (!exiting) {
        const invocation = await next;
        concurrentInvocations.set(invocation.requestId, own);
        const outcome = await invokeConcurrently(handler, invocation);
        if (exiting) return;
        concurrentInvocations.delete(invocation.requestId);
        let posted!: Promise<void>;
        own.batch(() => {
          // What the runtime says about this answer (it cannot be serialised, it is refused) is
          // logged under its request id; the next event's wait is no invocation's.
          posted = withLogRequestId(invocation.requestId, () =>
            postAnswer(own, invocation.requestId, answerOf(outcome)),
          );
          next = own.nextInvocation();
        });
        await posted;
      }
    }),
  );
}

/** Runs one invocation beside others; resolves with its outcome. */
function invokeConcurrently(handler: Handler, { requestId, headers, body }: Invocation): Promise<Outcome> {
  return withLogRequestId(
    requestId,
    () =>
      new Promise<Outcome>((resolve) => {
        let reported = false;
        const report = (outcome: Outcome) => {
          if (reported) {
            console.error(
              'Invocation has already been reported as done. Cannot call complete more than once per invocation.',
            );
            return;
          }
          reported = true;
          resolve(outcome);
        };
        const completion: Completion = {
          callbackWaitsForEmptyEventLoop: false,
          succeed: (result) => completion.done(null, result),
          fail: (error) => completion.done(error ?? 'handled'),
          done: (error, result) => {
            if (error === undefined || error === null) return report({ result });
            if (!reported) console.error('Invoke Error', formatForLog(error));
            report({ error });
          },
        };
        try {
          const event: unknown = JSON.parse(body);
          const returned = handler(
            event,
            buildContext(settings, requestId, headers, completion),
            completion.done,
          );
          if (isPromiseLike(returned)) returned.then(completion.succeed, completion.fail);
        } catch (error) {
          console.error('Invoke Error', formatForLog(error));
          report({ error });
        }
      }),
  );
}

async function main() {
  await startFunctionCode();
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
  const maxConcurrency = Number(process.env.AWS_LAMBDA_MAX_CONCURRENCY) || 1;
  if (maxConcurrency > 1) return serveConcurrently(handler, maxConcurrency);
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
