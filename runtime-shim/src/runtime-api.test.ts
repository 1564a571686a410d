import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { nodeHandlerFunction, removeFunction, startShim, type RunningShim } from './testing.js';

// One shim whose handler pokes at the Runtime API itself and returns what it saw.
const HANDLER = `
const post = async (url, body, headers = {}) => {
  const response = await fetch(url, { method: 'POST', body, headers });
  return { status: response.status, body: await response.json() };
};
export default async (event, context) => {
  const base = context.api + '/invocation/';
  switch (event.case) {
    case 'headers':
      return context.headers;
    case 'twice': {
      const first = await post(base + context.requestId + '/response', JSON.stringify({ first: true }));
      const second = await post(base + context.requestId + '/response', '"again"');
      const asError = await post(base + context.requestId + '/error', '{}');
      const unknown = await post(base + 'not-a-request/response', '{}');
      const lateInit = await post(context.api + '/init/error', '{}');
      context.reported = true;
      console.log(JSON.stringify({ first, second, asError, unknown, lateInit }));
      return;
    }
    case 'big': {
      const big = await post(base + context.requestId + '/response', JSON.stringify('x'.repeat(7 * 1024 * 1024)));
      console.log('big answer ' + JSON.stringify(big));
      context.reported = true;
      return;
    }
    case 'typed-error':
      await post(base + context.requestId + '/error', JSON.stringify({ errorMessage: 'bad input', errorType: 'InputError', stackTrace: [] }), {
        'lambda-runtime-function-error-type': 'Function.InputError',
      });
      context.reported = true;
      return;
    case 'curl': {
      // A report as curl sends one of unknown length: chunked, after waiting for 100 Continue.
      const { execFileSync } = await import('node:child_process');
      const said = execFileSync('curl', [
        '-sS', '-H', 'Transfer-Encoding: chunked', '-H', 'Expect: 100-continue',
        '--data-binary', '@-', '-w', ' %{http_code}', base + context.requestId + '/response',
      ], { input: JSON.stringify({ via: 'curl', padding: 'p'.repeat(100000) }) });
      console.log('curl said ' + said);
      context.reported = true;
      return;
    }
    default:
      return { ok: true };
  }
};
`;

let codeDir: string;
let shim: RunningShim;
before(async () => {
  codeDir = await nodeHandlerFunction(HANDLER);
  shim = await startShim({ codeDir });
});
after(async () => {
  await shim?.stop();
  await removeFunction(codeDir);
});

test('/next carries every Lambda-Runtime header, a JSON content type and the decoded client context', async () => {
  const deadline = Date.now() + 2000;
  const answer = await shim.invoke(
    { case: 'headers' },
    { requestId: 'req-headers-1', deadlineMs: deadline, clientContext: { custom: { a: 1 } } },
  );
  assert.equal(answer.status, 200);
  const headers = answer.json();
  assert.equal(headers['content-type'], 'application/json');
  assert.equal(headers['lambda-runtime-aws-request-id'], 'req-headers-1');
  assert.equal(Number(headers['lambda-runtime-deadline-ms']), deadline);
  assert.equal(
    headers['lambda-runtime-invoked-function-arn'],
    'arn:aws:lambda:us-east-1:000000000000:function:test-fn',
  );
  assert.match(
    headers['lambda-runtime-trace-id'],
    /^Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$/,
  );
  assert.deepEqual(JSON.parse(headers['lambda-runtime-client-context']), { custom: { a: 1 } });
});

test('the deadline given to the runtime is capped by the function timeout', async () => {
  const before = Date.now();
  const headers = (await shim.invoke({ case: 'headers' }, { deadlineMs: before + 60_000 })).json();
  const deadline = Number(headers['lambda-runtime-deadline-ms']);
  assert.ok(
    deadline >= before + 3000 && deadline <= Date.now() + 3000,
    `deadline ${deadline - before} ms ahead`,
  );
});

test('a second report is 403 InvalidStateTransition, an unknown id 400 InvalidRequestID', async () => {
  const answer = await shim.invoke({ case: 'twice' }, { requestId: 'req-twice-1', logTail: true });
  assert.equal(answer.status, 200);
  assert.deepEqual(answer.json(), { first: true });
  assert.equal(answer.errorType, null);
  // The handler logs after its first report was answered: read it from the function log.
  await shim.waitForStdout(/"lateInit"/);
  const seen = JSON.parse(/\{"first".*\}/.exec(shim.stdout())![0]);
  assert.deepEqual(seen.first, { status: 202, body: { status: 'OK' } });
  assert.equal(seen.second.status, 403);
  assert.equal(seen.second.body.errorType, 'InvalidStateTransition');
  assert.equal(seen.asError.status, 403);
  assert.equal(seen.unknown.status, 400);
  assert.equal(seen.unknown.body.errorType, 'InvalidRequestID');
  assert.equal(seen.lateInit.status, 403);
  // The instance keeps working.
  assert.deepEqual((await shim.invoke({})).json(), { ok: true });
});

test('a response over 6 MB is 413 to the runtime and Function.ResponseSizeTooLarge to the caller', async () => {
  const answer = await shim.invoke({ case: 'big' });
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get('x-hearth-function-error'), 'Unhandled');
  assert.equal(answer.errorType, 'Function.ResponseSizeTooLarge');
  assert.match(answer.json().errorMessage, /6291456 bytes/);
  await shim.waitForStdout(/big answer .*"status":413.*RequestEntityTooLarge/);
  // The runtime stays warm and serves the next call.
  const next = await shim.invoke({});
  assert.deepEqual(next.json(), { ok: true });
  assert.equal(next.initDurationMs, undefined);
});

test('a report sent chunked after Expect: 100-continue (curl) is taken whole', async () => {
  const answer = await shim.invoke({ case: 'curl' });
  assert.equal(answer.status, 200);
  const body = answer.json();
  assert.equal(body.via, 'curl');
  assert.equal(body.padding.length, 100000);
  await shim.waitForStdout(/curl said \{"status":"OK"\} 202/);
  assert.deepEqual((await shim.invoke({})).json(), { ok: true });
});

test('an error report comes back as-is, its type from the Lambda-Runtime-Function-Error-Type header', async () => {
  const answer = await shim.invoke({ case: 'typed-error' });
  assert.equal(answer.status, 200);
  assert.equal(answer.headers.get('x-hearth-function-error'), 'Unhandled');
  assert.equal(answer.errorType, 'Function.InputError');
  assert.deepEqual(answer.json(), { errorMessage: 'bad input', errorType: 'InputError', stackTrace: [] });
});

test("a /next's close listener runs only if the connection ends before its event was sent", async () => {
  const { connect } = await import('node:net');
  const { startRuntimeApi } = await import('./runtime-api.js');
  const closedBeforeEvent: string[] = [];
  let count = 0;
  const api = await startRuntimeApi({
    next(next) {
      const id = `req-${++count}`;
      next.onClose(() => closedBeforeEvent.push(id));
      // The first two get their event; the third waits until the connection ends.
      if (count <= 2) {
        next.send({
          requestId: id,
          body: Buffer.from('{}'),
          deadlineMs: Date.now() + 1000,
          invokedFunctionArn: 'arn',
          traceId: 't',
        });
      }
    },
    canReport: () => 'unknown-id',
    response: () => undefined,
    responseTooLarge: () => undefined,
    error: () => undefined,
    initError: () => false,
  });
  try {
    const [host, port] = api.address.split(':');
    const socket = connect(Number(port), host);
    let received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const next = 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n';
    socket.write(next + next + next);
    while ((received.match(/lambda-runtime-aws-request-id/g) ?? []).length < 2) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(closedBeforeEvent, ['req-3']);
  } finally {
    await api.close();
  }
});
