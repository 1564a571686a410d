import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeHandlerFunction, removeFunction, SHIM_MAIN, startShim, type RunningShim } from './testing.js';

const HANDLER = `
let calls = 0;
export default async (event, context) => {
  calls++;
  const startedAt = Date.now();
  if (event.sleepMs) await new Promise((resolve) => setTimeout(resolve, event.sleepMs));
  if (event.say) console.log(event.say);
  if (event.untagged) process.stdout.write(event.untagged + '\\n');
  const endedAt = Date.now();
  return { calls, startedAt, endedAt, order: event.order, env: event.env ? process.env[event.env] ?? null : undefined };
};
`;

const shims: RunningShim[] = [];
const dirs: string[] = [];
after(async () => {
  await Promise.all(shims.map((shim) => shim.stop()));
  await Promise.all(dirs.map(removeFunction));
});

async function start(settings: { concurrency?: number; env?: Record<string, string> } = {}) {
  const codeDir = await nodeHandlerFunction(HANDLER);
  dirs.push(codeDir);
  const shim = await startShim({ codeDir, ...settings });
  shims.push(shim);
  return shim;
}

test('a warm runtime keeps its state; Init Duration only on the cold start', async () => {
  const shim = await start();
  const first = await shim.invoke({});
  const second = await shim.invoke({});
  assert.equal(first.json().calls, 1);
  assert.equal(second.json().calls, 2);
  assert.ok(first.initDurationMs! > 0);
  assert.equal(second.initDurationMs, undefined);
  assert.ok(Number(second.headers.get('x-hearth-duration-ms')) > 0);
  assert.ok(Number(second.headers.get('x-hearth-billed-duration-ms')) >= 1);
  assert.ok(Number(second.headers.get('x-hearth-max-memory-used-mb')) > 0);
});

test('the log stream has START, tagged lines, END and REPORT; the tail is the last 4 KB of it', async () => {
  const shim = await start();
  const answer = await shim.invoke(
    { say: 'hello from the handler' },
    { requestId: 'req-log-1', logTail: true },
  );
  const tail = answer.logTail!;
  assert.match(tail, /^START RequestId: req-log-1 Version: \$LATEST\n/);
  assert.match(tail, /\n\d{4}-\d\d-\d\dT[\d:.]+Z\treq-log-1\thello from the handler\n/);
  assert.match(tail, /\nEND RequestId: req-log-1\n/);
  assert.match(
    tail,
    /\nREPORT RequestId: req-log-1\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 128 MB\tMax Memory Used: \d+ MB\tInit Duration: \d+\.\d\d ms\t\n$/,
  );
  await shim.waitForStdout(/REPORT RequestId: req-log-1/);
  assert.ok(shim.stdout().includes(tail), 'the tail is what the log stream got');

  const big = await shim.invoke({ say: 'x'.repeat(6000) }, { logTail: true });
  assert.equal(Buffer.byteLength(big.logTail!), 4096);
  assert.match(big.logTail!, /REPORT RequestId: .*\n$/);
  const none = await shim.invoke({ say: 'quiet' });
  assert.equal(none.logTail, undefined);
});

test('lines that already carry the request id stay as they are', async () => {
  const shim = await start();
  await shim.invoke(
    { untagged: 'custom\treq-own-1\tINFO\tformatted by the runtime' },
    { requestId: 'req-own-1' },
  );
  await shim.waitForStdout(/END RequestId: req-own-1/);
  assert.match(shim.stdout(), /\ncustom\treq-own-1\tINFO\tformatted by the runtime\n/);
});

test('the function env reaches the runtime, HEARTH_ settings do not; Lambda variables are set', async () => {
  const shim = await start({ env: { GREETING: 'hi', HEARTH_LOG_LEVEL: 'warn' } });
  const read = async (name: string) => (await shim.invoke({ env: name })).json().env;
  assert.equal(await read('GREETING'), 'hi');
  assert.equal(await read('HEARTH_LOG_LEVEL'), null);
  assert.equal(await read('AWS_LAMBDA_FUNCTION_NAME'), 'test-fn');
  assert.equal(await read('AWS_LAMBDA_LOG_GROUP_NAME'), '/aws/lambda/test-fn');
  assert.equal(await read('AWS_LAMBDA_FUNCTION_MEMORY_SIZE'), '128');
  assert.equal(await read('_HANDLER'), 'handler.default');
  assert.equal(await read('TZ'), 'UTC');
  assert.match(await read('AWS_LAMBDA_LOG_STREAM_NAME'), /^\d{4}\/\d\d\/\d\d\/\[\$LATEST\][0-9a-f]{32}$/);
});

test('one invocation at a time per runtime; callers beyond that are served in arrival order', async () => {
  const shim = await start();
  // The first call holds the runtime while the others arrive one by one, well apart.
  const answers = [shim.invoke({ order: 0, sleepMs: 500 })];
  await sleep(100);
  for (let order = 1; order < 5; order++) {
    answers.push(shim.invoke({ order, sleepMs: 10 }));
    await sleep(60);
  }
  const results = (await Promise.all(answers)).map((answer) => answer.json());
  // The same warm runtime served them one after the other, in the order they came.
  assert.deepEqual(
    results.map((result) => result.calls),
    [1, 2, 3, 4, 5],
  );
  for (let i = 1; i < results.length; i++) assert.ok(results[i].startedAt >= results[i - 1].endedAt);
});

test('HEARTH_CONCURRENCY=2 runs two runtimes side by side', async () => {
  const shim = await start({ concurrency: 2 });
  const [a, b] = (await Promise.all([shim.invoke({ sleepMs: 300 }), shim.invoke({ sleepMs: 300 })])).map(
    (answer) => answer.json(),
  );
  assert.deepEqual([a.calls, b.calls], [1, 1], 'each runtime served one call');
  assert.ok(a.startedAt < b.endedAt && b.startedAt < a.endedAt, 'the two calls overlapped');
});

test('SIGTERM: the call in flight finishes, new calls get 503, the shim exits 0', async () => {
  const shim = await start();
  const inFlight = shim.invoke({ sleepMs: 400 });
  await sleep(100);
  shim.child.kill('SIGTERM');
  await sleep(50);
  const refused = await fetch(`${shim.url}/invoke`, { method: 'POST', body: '{}' });
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get('x-hearth-error-type'), 'ShimUnavailable');
  assert.equal((await fetch(`${shim.url}/readyz`)).status, 503);
  const answer = await inFlight;
  assert.equal(answer.status, 200);
  assert.equal(answer.json().calls, 1);
  assert.deepEqual(await shim.exited, { code: 0, signal: null });
});

test('a bad setting is refused at start, naming the variable and its range', async () => {
  const child = spawn(process.execPath, [SHIM_MAIN], {
    env: {
      ...process.env,
      HEARTH_FUNCTION_NAME: 'f',
      HEARTH_RUNTIME: 'provided.al2023',
      HEARTH_CODE_DIR: '/nonexistent',
      HEARTH_MEMORY_MB: '64',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(code, 2);
  assert.match(stderr, /HEARTH_MEMORY_MB: must be an integer from 128 to 10240, got "64"/);
});

/** Writes `bytes` on a fresh connection to the shim and collects what comes back until it closes or `until` matches. */
async function exchange(shim: RunningShim, bytes: string, until: RegExp): Promise<string> {
  const { port } = new URL(shim.url);
  const socket = connect(Number(port), '127.0.0.1');
  let received = '';
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (received += chunk));
  socket.write(bytes);
  const deadline = Date.now() + 5000;
  while (!until.test(received) && !socket.closed && Date.now() < deadline) await sleep(10);
  socket.destroy();
  return received;
}

test("the instance's HTTP side: pipelined requests answered in order, a body in chunks, garbage refused with 400", async () => {
  const shim = await start();
  await shim.invoke({});
  const pipelined = await exchange(
    shim,
    'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' +
      'POST /invoke HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"say\r\n7\r\n":"hi"}\r\n0\r\n\r\n' +
      'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n',
    /\{"ready":true\}/,
  );
  const answers = pipelined.split('HTTP/1.1 ').slice(1);
  assert.equal(answers.length, 3, pipelined);
  assert.match(answers[0]!, /^200 OK\r\n[\s\S]*\{"status":"ok"\}$/);
  assert.match(answers[1]!, /^200 OK\r\n[\s\S]*x-hearth-duration-ms: [\d.]+\r\n[\s\S]*"calls":2/);
  assert.match(answers[2]!, /^200 OK\r\n[\s\S]*\{"ready":true\}$/);

  const garbage = await exchange(shim, 'NOT HTTP AT ALL\r\n\r\n', /\}$/);
  assert.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(garbage, /x-amzn-errortype: InvalidRequestContentException/);
  assert.match(garbage, /Bad request line: NOT HTTP AT ALL/);
  assert.deepEqual((await shim.invoke({})).json().calls, 3, 'the instance keeps serving');
});

test('a caller that leaves while its call waits for the runtime takes the call back', async () => {
  const shim = await start();
  const busy = shim.invoke({ sleepMs: 600 });
  await sleep(100);
  const body = JSON.stringify({ say: 'never run' });
  // Queued behind the busy call, then the caller hangs up.
  const { port } = new URL(shim.url);
  const caller = connect(Number(port), '127.0.0.1');
  await new Promise<void>((resolve) =>
    caller.write(`POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`, () =>
      resolve(),
    ),
  );
  await sleep(100);
  caller.destroy();
  assert.equal((await busy).json().calls, 1);
  const next = await shim.invoke({});
  assert.equal(next.json().calls, 2, 'the abandoned call never ran');
  assert.ok(!shim.stdout().includes('never run'));
});

test('an event over 6 MB is 413 RequestTooLargeException from the instance, which keeps serving', async () => {
  const shim = await start();
  const answer = await fetch(new URL('/invoke', shim.url), {
    method: 'POST',
    body: JSON.stringify({ say: 'x'.repeat(6 * 1024 * 1024) }),
  });
  assert.equal(answer.status, 413);
  assert.equal(answer.headers.get('x-amzn-errortype'), 'RequestTooLargeException');
  assert.match(((await answer.json()) as { message: string }).message, /smaller than 6291456 bytes/);
  assert.equal((await shim.invoke({})).json().calls, 1, 'the event never reached the runtime');
});

test('nothing pipelined after a Connection: close request runs', async () => {
  const shim = await start();
  const call = (headers: string) =>
    `POST /invoke HTTP/1.1\r\nHost: x\r\n${headers}Content-Length: 2\r\n\r\n{}`;
  const received = await exchange(shim, call('Connection: close\r\n') + call(''), /"calls":1[\s\S]*$/);
  assert.equal(received.split('HTTP/1.1 ').length - 1, 1, received);
  assert.equal((await shim.invoke({})).json().calls, 2, 'the call after the close never ran');
});

test('a shim removes the default state dirs of shims that died without removing theirs, and only those', async () => {
  const exited = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => exited.once('exit', resolve));
  const deadOwner = join(tmpdir(), `hearth-shim-${exited.pid}-stale`);
  const liveOwner = join(tmpdir(), `hearth-shim-${process.pid}-live`);
  const unknownOwner = join(tmpdir(), 'hearth-shim-Ab12Cd');
  for (const dir of [deadOwner, liveOwner, unknownOwner]) {
    mkdirSync(join(dir, 'slot-0', 'tmp'), { recursive: true });
    writeFileSync(join(dir, 'slot-0', 'tmp', 'left'), 'x');
  }
  try {
    await start();
    for (let waited = 0; existsSync(deadOwner); waited += 20) {
      assert.ok(waited < 5000, `${deadOwner} is still there`);
      await sleep(20);
    }
    assert.ok(existsSync(liveOwner), 'a live shim keeps its state dir');
    assert.ok(existsSync(unknownOwner), 'a dir whose owner is not known is left alone');
  } finally {
    for (const dir of [deadOwner, liveOwner, unknownOwner]) rmSync(dir, { recursive: true, force: true });
  }
});
