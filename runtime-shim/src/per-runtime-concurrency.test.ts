// Several calls at once in one runtime process (HEARTH_PER_RUNTIME_CONCURRENCY, Lambda Managed
// Instances' AWS_LAMBDA_MAX_CONCURRENCY), with Hearth's Node runtime.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { removeFunction, startShim, writeFunction, type RunningShim } from './testing.js';

const HANDLER = `
import { closeSync, existsSync, openSync, writeFileSync, writeSync } from 'node:fs';
// /tmp by the loop mount is the literal /tmp; by directory, TMPDIR.
const tmp = process.env.TMPDIR || '/tmp';
export const handler = async (event, context) => {
  console.log('start ' + event.n);
  switch (event.case) {
    case 'keep':
      writeFileSync(tmp + '/keep', 'kept');
      break;
    case 'flood': {
      // Past the 512 MB of /tmp, swallowing ENOSPC as careless code does: the shim finds it full.
      const fd = openSync(tmp + '/flood', 'w');
      const block = Buffer.alloc(4 * 1024 * 1024, 1);
      try {
        for (let i = 0; i < 140; i++) writeSync(fd, block);
      } catch {}
      closeSync(fd);
      break;
    }
    case 'memory': {
      const hold = [];
      for (;;) hold.push(Buffer.alloc(16 * 1024 * 1024, 1));
    }
    case 'big':
      return 'x'.repeat(7 * 1024 * 1024);
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, event.ms));
      break;
    case 'never':
      // Neither settles nor calls back: only its timeout ends it.
      await new Promise(() => {});
      break;
    case 'exit':
      setTimeout(() => process.exit(3), 50);
      await new Promise(() => {});
      break;
  }
  console.log('end ' + event.n);
  return {
    pid: process.pid,
    n: event.n,
    max: process.env.AWS_LAMBDA_MAX_CONCURRENCY ?? null,
    kept: existsSync(tmp + '/keep'),
  };
};
`;

const shims: RunningShim[] = [];
const dirs: string[] = [];
after(async () => {
  await Promise.all(shims.map((shim) => shim.stop()));
  await Promise.all(dirs.map(removeFunction));
});

async function start(perRuntime: number, timeoutSeconds = 3) {
  const codeDir = await writeFunction({ 'index.mjs': HANDLER });
  dirs.push(codeDir);
  const shim = await startShim({
    codeDir,
    runtime: 'nodejs20.x',
    handler: 'index.handler',
    timeoutSeconds,
    concurrency: perRuntime,
    env: { HEARTH_PER_RUNTIME_CONCURRENCY: String(perRuntime) },
  });
  shims.push(shim);
  return shim;
}

/**
 * Calls that sleep in the runtime for longer than the test lasts, started (their first line
 * logged) before whatever comes next: only the fault that ends their runtime ends them.
 */
async function runningBeside(shim: RunningShim, ns: number[]) {
  const calls = ns.map((n) => shim.invoke({ case: 'sleep', ms: 15_000, n }));
  for (const n of ns) await shim.waitForStdout(new RegExp(`\\tINFO\\tstart ${n}\\n`));
  return calls;
}

test('one runtime process runs its calls at once, each with its own log lines', async () => {
  const shim = await start(4);
  await shim.invoke({ case: 'sleep', ms: 0, n: 0 });
  const began = performance.now();
  const answers = await Promise.all(
    [1, 2, 3, 4].map((n) => shim.invoke({ case: 'sleep', ms: 400, n }, { logTail: true })),
  );
  const elapsedMs = performance.now() - began;
  assert.ok(elapsedMs < 1200, `4 calls of 400 ms took ${elapsedMs.toFixed(0)} ms: not at once`);
  const pids = new Set(answers.map((answer) => answer.json().pid));
  assert.equal(pids.size, 1, 'one runtime process');
  for (const [index, answer] of answers.entries()) {
    const n = index + 1;
    assert.equal(answer.status, 200, answer.text);
    assert.equal(answer.json().max, '4');
    // Each call's tail holds its own lines, under its own request id, and none of the others'.
    const tail = answer.logTail!;
    const requestId = /START RequestId: (\S+)/.exec(tail)?.[1];
    assert.ok(requestId, tail);
    assert.match(tail, new RegExp(`\\t${requestId}\\tINFO\\tstart ${n}\\n`));
    assert.match(tail, new RegExp(`\\t${requestId}\\tINFO\\tend ${n}\\n`));
    for (const other of [1, 2, 3, 4].filter((o) => o !== n)) {
      assert.doesNotMatch(tail, new RegExp(`start ${other}\\n`));
    }
  }
});

test('a call that times out fails alone; the others in its runtime finish, then the runtime is replaced', async () => {
  const shim = await start(4, 2);
  const first = await shim.invoke({ case: 'sleep', ms: 0, n: 0 });
  const stuck = shim.invoke({ case: 'never', n: 1 });
  // Started a second later, these are still running when the stuck call's 2 s are up.
  await sleep(1000);
  const sleepers = await Promise.all([2, 3].map((n) => shim.invoke({ case: 'sleep', ms: 1500, n })));
  const timedOut = await stuck;
  assert.equal(timedOut.errorType, 'Sandbox.Timedout', timedOut.text);
  for (const sleeper of sleepers) {
    assert.equal(sleeper.status, 200, sleeper.text);
    assert.equal(sleeper.json().pid, first.json().pid, 'ran on in the runtime of the stuck call');
  }
  const next = await shim.invoke({ case: 'sleep', ms: 0, n: 4 });
  assert.equal(next.status, 200, next.text);
  assert.notEqual(next.json().pid, first.json().pid, 'a fresh runtime after the timeout');
});

test('a runtime that dies fails every call it was running; the next call gets a fresh one', async () => {
  const shim = await start(4);
  const first = await shim.invoke({ case: 'sleep', ms: 0, n: 0 });
  const answers = await Promise.all([
    shim.invoke({ case: 'exit', n: 1 }),
    shim.invoke({ case: 'sleep', ms: 2000, n: 2 }),
    shim.invoke({ case: 'sleep', ms: 2000, n: 3 }),
  ]);
  for (const answer of answers) {
    assert.equal(answer.errorType, 'Runtime.ExitError', answer.text);
    assert.match(answer.json().errorMessage, /exit status 3/);
  }
  const next = await shim.invoke({ case: 'sleep', ms: 0, n: 4 });
  assert.equal(next.status, 200, next.text);
  assert.notEqual(next.json().pid, first.json().pid);
});

test('a /tmp overflow by one call fails every call in its runtime; /tmp is wiped for the fresh one', async () => {
  const shim = await start(4, 20);
  const first = await shim.invoke({ case: 'keep', n: 0 });
  assert.equal(first.json().kept, true);
  const beside = await runningBeside(shim, [1, 2]);
  const answers = await Promise.all([shim.invoke({ case: 'flood', n: 3 }), ...beside]);
  for (const answer of answers) {
    assert.equal(answer.errorType, 'Runtime.EphemeralStorageFull', answer.text);
    assert.match(answer.json().errorMessage, /\/tmp is full.*512 MB/);
  }
  const next = await shim.invoke({ case: 'sleep', ms: 0, n: 4 });
  assert.equal(next.status, 200, next.text);
  assert.notEqual(next.json().pid, first.json().pid, 'a fresh runtime');
  assert.ok(next.initDurationMs! > 0, 'a fresh runtime reports its init');
  assert.equal(next.json().kept, false, '/tmp was wiped');
});

test('a call past the memory limit fails every call in its runtime with out of memory', async () => {
  const shim = await start(4, 20);
  const first = await shim.invoke({ case: 'sleep', ms: 0, n: 0 });
  const beside = await runningBeside(shim, [1, 2]);
  const answers = await Promise.all([shim.invoke({ case: 'memory', n: 3 }), ...beside]);
  for (const answer of answers) {
    assert.equal(answer.errorType, 'Runtime.ExitError', answer.text);
    assert.match(
      answer.json().errorMessage,
      /Runtime exited with error: signal: killed \(out of memory.*128 MB\)/,
    );
    // The runtime's peak while the calls overlapped.
    assert.equal(answer.headers.get('x-hearth-max-memory-used-mb'), '128');
  }
  const next = await shim.invoke({ case: 'sleep', ms: 0, n: 4 });
  assert.equal(next.status, 200, next.text);
  assert.notEqual(next.json().pid, first.json().pid, 'a fresh runtime');
  assert.ok(next.initDurationMs! > 0, 'a fresh runtime reports its init');
});

test("a response over 6 MB fails its own call alone, with the runtime's line about it in that call's log", async () => {
  const shim = await start(4);
  const first = await shim.invoke({ case: 'sleep', ms: 0, n: 0 });
  const beside = shim.invoke({ case: 'sleep', ms: 1500, n: 1 }, { logTail: true, requestId: 'req-beside' });
  await shim.waitForStdout(/\tINFO\tstart 1\n/);
  const big = await shim.invoke({ case: 'big', n: 2 }, { logTail: true, requestId: 'req-big' });
  assert.equal(big.errorType, 'Function.ResponseSizeTooLarge', big.text);
  assert.match(big.logTail!, /\treq-big\tERROR\tResponse payload size \(\d+ bytes\) exceeded/);
  const other = await beside;
  assert.equal(other.errorType, null, other.text);
  assert.equal(other.json().pid, first.json().pid, 'the runtime stays');
  assert.doesNotMatch(other.logTail!, /req-big|exceeded/);
  // The refusal itself reaches the runtime after the call's answer: in the log stream, under its id.
  await shim.waitForStdout(/\treq-big\tERROR\tRuntime API answered 413: .*RequestEntityTooLarge/);
});
