/**
 * The console as AWS's Node.js runtime patches it: every call becomes one stdout record
 * `<ISO time>\t<request id>\t<LEVEL>\t<message>\n`. Newlines inside a message become `\r`, so a
 * stack trace or pretty-printed object stays one record for whoever splits the log into lines.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { format } from 'node:util';

// Before the first invocation AWS prints the literal `undefined` in the request id column.
let currentRequestId = 'undefined';
/** With several invocations at once, each one's code logs under its own request id. */
const concurrentRequestId = new AsyncLocalStorage<string>();

export function setLogRequestId(requestId: string) {
  currentRequestId = requestId;
}

/** Runs `work` (and whatever it starts) logging under `requestId`, beside other invocations. */
export function withLogRequestId<T>(requestId: string, work: () => T): T {
  return concurrentRequestId.run(requestId, work);
}

/**
 * One record under the invocation in progress: the function's console, and the runtime's own lines
 * about that invocation (so that they are in its log beside others running at once).
 */
export function writeRecord(level: string, args: unknown[]) {
  const message = format(...args).replace(/\r?\n/g, '\r');
  const requestId = concurrentRequestId.getStore() ?? currentRequestId;
  process.stdout.write(`${new Date().toISOString()}\t${requestId}\t${level}\t${message}\n`);
}

export function patchConsole() {
  console.log = (...args: unknown[]) => writeRecord('INFO', args);
  console.info = (...args: unknown[]) => writeRecord('INFO', args);
  console.warn = (...args: unknown[]) => writeRecord('WARN', args);
  console.error = (...args: unknown[]) => writeRecord('ERROR', args);
  console.debug = (...args: unknown[]) => writeRecord('DEBUG', args);
  console.trace = (...args: unknown[]) => {
    // Like the original console.trace: the message followed by where it was called from.
    const stack = new Error().stack?.split('\n').slice(2).join('\n') ?? '';
    writeRecord('TRACE', [format(...args) + '\n' + stack]);
  };
}
