import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { SANDBOX_FAILED_EXIT_CODE, TMP_READY_FD_VARIABLE } from '../launch-protocol.js';
import { startFunction, type FunctionUnderTest } from '../function-under-test.js';

// One ESM function (a `.js` file under `"type": "module"`) whose handler runs the form the event
// names: every form shares one warm runtime, as consecutive invocations do on Lambda.
const esmFunction = {
  'package.json': JSON.stringify({ type: 'module' }),
  'index.js': `
let invocations = 0;

class ValidationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ValidationError';
  }
}

const forms = {
  state: async () => ({ invocations }),
  nothing: async () => undefined,
  context: async (event, context) => ({
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    awsRequestId: context.awsRequestId,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    clientContext: context.clientContext,
    remainingTimeInMillis: context.getRemainingTimeInMillis(),
    callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
    env: {
      MY_SETTING: process.env.MY_SETTING,
      AWS_REGION: process.env.AWS_REGION,
      _HANDLER: process.env._HANDLER,
      LAMBDA_TASK_ROOT: process.env.LAMBDA_TASK_ROOT,
      _X_AMZN_TRACE_ID: process.env._X_AMZN_TRACE_ID,
    },
  }),
  // The result is sent once the timer has run: the callback waits for the event loop to drain.
  callback: (event, context, callback) => {
    const result = { timerRan: false };
    setTimeout(() => (result.timerRan = true), 100);
    callback(null, result);
  },
  callbackWithoutWaiting: (event, context, callback) => {
    context.callbackWaitsForEmptyEventLoop = false;
    const result = { timerRan: false };
    setTimeout(() => (result.timerRan = true), 100);
    callback(null, result);
  },
  callbackError: (event, context, callback) => callback(new ValidationError('rejected by callback')),
  succeed: (event, context) => context.succeed({ via: 'succeed' }),
  done: (event, context) => context.done(null, { via: 'done' }),
  fail: (event, context) => context.fail(new Error('failed through context')),
  returnsWithoutPromise: () => 'a plain return value is not the result',
  throwError: async () => {
    throw new ValidationError('the input was not valid');
  },
  throwString: async () => {
    throw 'a plain string';
  },
  log: async (event, context) => {
    console.log('hello from', { requestId: context.awsRequestId });
    console.warn('first line\\nsecond line');
    return 'logged';
  },
  unhandledRejection: async () => {
    Promise.reject(new Error('nobody awaited this'));
    return new Promise((resolve) => setTimeout(resolve, 500, 'finished too late'));
  },
  uncaughtException: (event, context, callback) => {
    setTimeout(() => {
      throw new RangeError('thrown from a timer');
    }, 10);
  },
};

export function handler(event, context, callback) {
  invocations += 1;
  return forms[event.form](event, context, callback);
}
`,
};

describe('Node.js runtime: handler forms through the shim', () => {
  let fn: FunctionUnderTest;
  before(async () => {
    fn = await startFunction({
      runtime: 'nodejs20.x',
      handler: 'index.handler',
      files: esmFunction,
      env: { MY_SETTING: 'from the function config' },
      memoryMb: 256,
      timeoutSeconds: 10,
    });
  });
  after(() => fn?.stop());

  test('an async handler returns JSON, undefined becomes null, and module state survives', async () => {
    const first = await fn.invoke({ form: 'state' });
    assert.equal(first.status, 200);
    assert.equal(first.functionError, null);
    const second = await fn.invoke({ form: 'state' });
    assert.equal(
      (second.json as { invocations: number }).invocations,
      (first.json as { invocations: number }).invocations + 1,
      'the second invocation sees the counter the first one left',
    );
    const nothing = await fn.invoke({ form: 'nothing' });
    assert.equal(nothing.body, 'null');
  });

  test('the context and environment carry the function settings and the invocation headers', async () => {
    const clientContext = { custom: { tenant: 'blue' }, env: { locale: 'en' } };
    const startedAt = Date.now();
    const result = await fn.invoke(
      { form: 'context' },
      {
        requestId: 'ctx-request-1',
        clientContext,
        traceId: 'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1',
      },
    );
    const context = result.json as Record<string, unknown> & { env: Record<string, string> };
    assert.equal(context.functionName, fn.name);
    assert.equal(context.functionVersion, '$LATEST');
    assert.match(
      String(context.invokedFunctionArn),
      new RegExp(`^arn:aws:lambda:[^:]+:\\d+:function:${fn.name}`),
    );
    assert.equal(context.memoryLimitInMB, '256');
    assert.equal(context.awsRequestId, 'ctx-request-1');
    assert.equal(context.logGroupName, `/aws/lambda/${fn.name}`);
    assert.ok(context.logStreamName, 'a log stream name is set');
    assert.deepEqual(context.clientContext, clientContext);
    const remaining = context.remainingTimeInMillis as number;
    assert.ok(
      remaining > 5_000 && remaining <= 10_000 - (Date.now() - startedAt) + 1000,
      `remaining ${remaining} ms`,
    );
    assert.equal(context.callbackWaitsForEmptyEventLoop, true);
    assert.equal(context.env.MY_SETTING, 'from the function config');
    assert.ok(context.env.AWS_REGION, 'AWS_REGION is set');
    assert.equal(context.env._HANDLER, 'index.handler');
    assert.ok(context.env.LAMBDA_TASK_ROOT);
    assert.equal(context.env._X_AMZN_TRACE_ID, 'Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1');
  });

  test('a callback answers after the event loop drains, unless callbackWaitsForEmptyEventLoop is false', async () => {
    assert.deepEqual((await fn.invoke({ form: 'callback' })).json, { timerRan: true });
    assert.deepEqual((await fn.invoke({ form: 'callbackWithoutWaiting' })).json, { timerRan: false });
  });

  test('context.succeed and context.done answer at once; a plain return value is ignored, as on AWS', async () => {
    assert.deepEqual((await fn.invoke({ form: 'succeed' })).json, { via: 'succeed' });
    assert.deepEqual((await fn.invoke({ form: 'done' })).json, { via: 'done' });
    assert.equal((await fn.invoke({ form: 'returnsWithoutPromise' })).body, 'null');
  });

  test('errors come back in the Node shape: errorType, errorMessage, trace', async () => {
    const thrown = await fn.invoke({ form: 'throwError' });
    assert.equal(thrown.status, 200);
    assert.equal(thrown.functionError, 'Unhandled');
    const error = thrown.json as { errorType: string; errorMessage: string; trace: string[] };
    assert.equal(error.errorType, 'ValidationError');
    assert.equal(error.errorMessage, 'the input was not valid');
    assert.equal(error.trace[0], 'ValidationError: the input was not valid');
    assert.match(error.trace[1] ?? '', /at .*index\.js/);

    for (const [form, errorType, errorMessage] of [
      ['callbackError', 'ValidationError', 'rejected by callback'],
      ['fail', 'Error', 'failed through context'],
      ['throwString', 'string', 'a plain string'],
    ]) {
      const result = await fn.invoke({ form });
      assert.equal(result.functionError, 'Unhandled', form);
      assert.deepEqual(
        {
          errorType: (result.json as { errorType: string }).errorType,
          errorMessage: (result.json as { errorMessage: string }).errorMessage,
        },
        { errorType, errorMessage },
        form,
      );
    }
    // A handled error leaves the runtime warm.
    const after = (await fn.invoke({ form: 'state' })).json as { invocations: number };
    assert.ok(after.invocations > 1);
  });

  test('console output is written in AWS format, one record per call, tagged with the request id', async () => {
    const result = await fn.invoke({ form: 'log' }, { requestId: 'log-request-1', tail: true });
    assert.equal(result.json, 'logged');
    await fn.waitForLogs(/END RequestId: log-request-1/);
    const records = fn.logs();
    assert.match(
      records,
      /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\tlog-request-1\tINFO\thello from \{ requestId: 'log-request-1' \}/,
    );
    assert.match(
      records,
      /\tlog-request-1\tWARN\tfirst line\rsecond line/,
      'a multi-line message stays one record',
    );
    assert.match(result.logTail, /\tlog-request-1\tINFO\thello from/, 'the log tail carries the records too');
  });

  test('an unhandled rejection fails the invocation and the next one gets a fresh runtime', async () => {
    const failed = await fn.invoke({ form: 'unhandledRejection' });
    assert.equal(failed.functionError, 'Unhandled');
    const error = failed.json as { errorType: string; errorMessage: string };
    assert.equal(error.errorType, 'Runtime.UnhandledPromiseRejection');
    assert.equal(error.errorMessage, 'Error: nobody awaited this');
    assert.deepEqual(
      (await fn.invoke({ form: 'state' })).json,
      { invocations: 1 },
      'module state starts over',
    );
  });

  test('an uncaught exception fails the invocation and the next one gets a fresh runtime', async () => {
    const failed = await fn.invoke({ form: 'uncaughtException' });
    assert.equal(failed.functionError, 'Unhandled');
    assert.deepEqual(
      { ...(failed.json as object), trace: undefined },
      { errorType: 'RangeError', errorMessage: 'thrown from a timer', trace: undefined },
    );
    assert.deepEqual((await fn.invoke({ form: 'state' })).json, { invocations: 1 });
  });
});

describe('Node.js runtime: CommonJS and init errors', () => {
  test('a CommonJS handler nested in an object in a subdirectory, exported through module.exports', async () => {
    const fn = await startFunction({
      runtime: 'nodejs22.x',
      handler: 'lib/app.handlers.main',
      files: {
        // Built at run time, so Node cannot detect the export names statically.
        'lib/app.js': `
const handlers = { main: (event, context, callback) => callback(null, { commonJs: typeof require === 'function', event }) };
module.exports = Object.fromEntries([['handlers', handlers]]);
`,
      },
    });
    try {
      const result = await fn.invoke({ hello: 'cjs' });
      assert.deepEqual(result.json, { commonJs: true, event: { hello: 'cjs' } });
    } finally {
      await fn.stop();
    }
  });

  for (const { title, files, errorType, errorMessage } of [
    {
      title: 'a syntax error is Runtime.UserCodeSyntaxError',
      files: { 'index.mjs': 'export const handler = async () => {' },
      errorType: 'Runtime.UserCodeSyntaxError',
      errorMessage: /^SyntaxError: /,
    },
    {
      title: 'a missing module is Runtime.ImportModuleError',
      files: { 'other.js': 'exports.handler = () => {}' },
      errorType: 'Runtime.ImportModuleError',
      errorMessage: /Cannot find module 'index'/,
    },
    {
      title: 'a missing dependency is Runtime.ImportModuleError',
      files: { 'index.mjs': "import 'not-installed-anywhere';\nexport const handler = async () => 1;" },
      errorType: 'Runtime.ImportModuleError',
      errorMessage: /Cannot find package 'not-installed-anywhere'/,
    },
    {
      title: 'a module that throws while loading fails init with that error',
      files: { 'index.mjs': "throw new TypeError('DATABASE_URL is not set');" },
      errorType: 'TypeError',
      errorMessage: /^DATABASE_URL is not set$/,
    },
    {
      title: 'a missing export is Runtime.HandlerNotFound',
      files: { 'index.cjs': 'exports.other = () => {}' },
      errorType: 'Runtime.HandlerNotFound',
      errorMessage: /^index\.handler is undefined or not exported$/,
    },
  ]) {
    test(title, async () => {
      const fn = await startFunction({ runtime: 'nodejs20.x', handler: 'index.handler', files });
      try {
        const result = await fn.invoke({});
        assert.equal(result.status, 200);
        assert.equal(result.functionError, 'Unhandled');
        const error = result.json as { errorType: string; errorMessage: string };
        assert.equal(error.errorType, errorType);
        assert.match(error.errorMessage, errorMessage);
      } finally {
        await fn.stop();
      }
    });
  }
});

// With auto isolation the Node runtime starts while its /tmp is still being made (the launcher
// mounts it in the background); none of the function's code may run before the mount. A file in
// the host's /tmp must be out of sight from the module's first line, and from code NODE_OPTIONS
// loads before the bootstrap (then the launcher mounts first). The code is outside /tmp: code
// under /tmp also makes the launcher mount first. NODE_OPTIONS is the function's, given as the
// controller gives it: the shim's own Node must not load ./pre.cjs (it would fail to start).
describe(
  'Node.js runtime: a private /tmp from the first line of the function',
  { skip: process.getuid?.() !== 0 && 'needs root (loop-mounted /tmp)' },
  () => {
    const hostMarker = `/tmp/hearth-host-marker-${process.pid}`;
    before(() => writeFileSync(hostMarker, 'host'));
    after(() => rmSync(hostMarker, { force: true }));
    const files = {
      'pre.cjs': `globalThis.preloadSawHostTmp = require('node:fs').existsSync(process.env.HOST_MARKER);`,
      'index.mjs': `
import { existsSync, statSync } from 'node:fs';
const atInit = existsSync(process.env.HOST_MARKER);
export const handler = async () => ({
  atInit,
  now: existsSync(process.env.HOST_MARKER),
  preload: globalThis.preloadSawHostTmp ?? null,
  tmpIsItsOwnFilesystem: statSync('/tmp').dev !== statSync('/').dev,
  readyFdVisible: process.env.HEARTH_TMP_READY_FD ?? null,
});`,
    };
    for (const [title, env, preloadSawHostTmp] of [
      ['started beside the mount', {}, null],
      ['started after the mount (NODE_OPTIONS)', { NODE_OPTIONS: '--require ./pre.cjs' }, false],
    ] as const) {
      test(title, async () => {
        const fn = await startFunction({
          runtime: 'nodejs20.x',
          handler: 'index.handler',
          files,
          codeParent: '/var/tmp',
          env: { HEARTH_ISOLATION: 'auto', HOST_MARKER: hostMarker, ...env },
        });
        try {
          const result = await fn.invoke({});
          assert.equal(result.functionError, null, result.body);
          assert.deepEqual(result.json, {
            atInit: false,
            now: false,
            preload: preloadSawHostTmp,
            tmpIsItsOwnFilesystem: true,
            readyFdVisible: null,
          });
        } finally {
          await fn.stop();
        }
      });
    }
  },
);

// The launcher's side of the wait, played by the test: the bootstrap started with the status fd
// (a FIFO, as the launcher makes) loads nothing of the function before the status comes, and
// a failed status ends it with the sandbox's exit code, the function never loaded.
describe('Node.js runtime: the wait for the launcher to make /tmp', () => {
  const bootstrap = fileURLToPath(new URL('./bootstrap.cjs', import.meta.url));
  let dir: string;
  before(() => {
    dir = mkdtempSync(join('/var/tmp', 'hearth-wait-'));
    writeFileSync(
      join(dir, 'index.mjs'),
      `process.stdout.write('function loaded\\n');\nexport const handler = () => 1;`,
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function startWaiting(): { status: number; output: () => string; exited: Promise<number | null> } {
    const fifo = join(dir, `status-${Math.random().toString(36).slice(2)}`);
    execFileSync('mkfifo', [fifo]);
    const status = openSync(fifo, 'r+');
    const child = spawn(process.execPath, [bootstrap], {
      cwd: dir,
      env: {
        PATH: process.env.PATH,
        [TMP_READY_FD_VARIABLE]: '3',
        _HANDLER: 'index.handler',
        LAMBDA_TASK_ROOT: dir,
        // Nothing listens: once loaded, the runtime fails on its first /next and exits.
        AWS_LAMBDA_RUNTIME_API: '127.0.0.1:1',
      },
      stdio: ['ignore', 'pipe', 'pipe', status],
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    return { status, output: () => output, exited };
  }

  test('nothing of the function loads before the status, and it loads once the status is 0', async () => {
    const runtime = startWaiting();
    try {
      await sleep(400);
      assert.doesNotMatch(runtime.output(), /function loaded/);
      writeSync(runtime.status, '0\n');
      await runtime.exited;
      assert.match(runtime.output(), /function loaded/);
    } finally {
      closeSync(runtime.status);
    }
  });

  test('a failed status ends the runtime with the sandbox exit code, the function never loaded', async () => {
    const runtime = startWaiting();
    try {
      writeSync(runtime.status, '1\n');
      assert.equal(await runtime.exited, SANDBOX_FAILED_EXIT_CODE);
      assert.match(runtime.output(), /private \/tmp could not be made/);
      assert.doesNotMatch(runtime.output(), /function loaded/);
    } finally {
      closeSync(runtime.status);
    }
  });
});
