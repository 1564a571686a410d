import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  isAlive,
  nodeHandlerFunction,
  removeFunction,
  startShim,
  writeFunction,
  type RunningShim,
} from './testing.js';

// Each case is one handler behaviour; after the fault the same instance must serve `{}` again.
const HANDLER = `
import { existsSync, writeFileSync, openSync, writeSync, closeSync, readFileSync } from 'node:fs';
export default async (event) => {
  switch (event.case) {
    case 'loop':
      console.log('pid ' + process.pid);
      for (;;) {}
    case 'memory': {
      const hold = [];
      for (;;) hold.push(Buffer.alloc(16 * 1024 * 1024, 1));
    }
    case 'flood': {
      // Portable isolation confines TMPDIR only.
      const fd = openSync((process.env.TMPDIR || '/tmp') + '/flood', 'w');
      const block = Buffer.alloc(4 * 1024 * 1024, 1);
      try {
        for (let i = 0; i < 140; i++) writeSync(fd, block);
      } catch (error) {
        // A careless handler swallows ENOSPC.
        console.log('write failed: ' + error.code);
      }
      closeSync(fd);
      return 'flooded';
    }
    case 'flood-at': {
      // Lambda code writes the literal /tmp, whatever TMPDIR says: here the instance's own /tmp.
      const fd = openSync(event.dir + '/flood', 'w');
      const block = Buffer.alloc(4 * 1024 * 1024);
      try {
        for (let i = 0; i < 130; i++) writeSync(fd, block);
      } catch (error) {
        console.log('write failed: ' + error.code);
      }
      closeSync(fd);
      return 'flooded';
    }
    case 'write-at':
      writeFileSync(event.dir + '/keep', 'kept');
      return 'written';
    case 'read-at':
      return existsSync(event.dir + '/keep') ? readFileSync(event.dir + '/keep', 'utf8') : null;
    case 'tmpdir':
      return process.env.TMPDIR ?? null;
    case 'exit':
      process.exit(1);
    case 'write-tmp':
      writeFileSync((process.env.TMPDIR || '/tmp') + '/keep', 'kept');
      return 'written';
    case 'read-tmp':
      const keep = (process.env.TMPDIR || '/tmp') + '/keep';
      return existsSync(keep) ? readFileSync(keep, 'utf8') : null;
    default:
      return { ok: true, pid: process.pid };
  }
};
`;

const shims: RunningShim[] = [];
const dirs: string[] = [];
after(async () => {
  await Promise.all(shims.map((shim) => shim.stop()));
  await Promise.all(dirs.map(removeFunction));
});

async function start(settings: { timeoutSeconds?: number; env?: Record<string, string> } = {}) {
  const codeDir = await nodeHandlerFunction(HANDLER);
  dirs.push(codeDir);
  const shim = await startShim({ codeDir, ...settings });
  shims.push(shim);
  return shim;
}

async function assertServesAgain(shim: RunningShim) {
  const answer = await shim.invoke({});
  assert.equal(answer.errorType, null, answer.text);
  assert.equal(answer.json().ok, true);
  assert.ok(answer.initDurationMs! > 0, 'a fresh runtime reports its init');
}

test('an infinite loop is killed at its deadline (within 100 ms) with Sandbox.Timedout', async () => {
  const shim = await start({ timeoutSeconds: 1 });
  const started = Date.now();
  // The gateway's deadline; the shim caps it at the function's 1 s timeout from delivery anyway.
  const answer = await shim.invoke({ case: 'loop' }, { requestId: 'req-loop', deadlineMs: started + 1000 });
  const elapsed = Date.now() - started;
  assert.equal(answer.errorType, 'Sandbox.Timedout');
  assert.equal(answer.json().errorType, 'Sandbox.Timedout');
  // The time the function had: up to the gateway's deadline, which started a little before delivery
  // (on a loaded machine the test's own first request can take a few hundred ms to get there).
  assert.match(
    answer.json().errorMessage,
    /^RequestId: req-loop Error: Task timed out after (0\.[5-9]\d|1\.00) seconds$/,
  );
  const pid = Number(/pid (\d+)/.exec(shim.stdout())![1]);
  // Reaping the killed process takes a moment; it must be gone well within the margin.
  const killDeadline = started + 1000 + 100;
  while (isAlive(pid) && Date.now() < killDeadline) await sleep(5);
  assert.equal(
    isAlive(pid),
    false,
    `the looping runtime outlived its deadline by more than 100 ms (answered after ${elapsed} ms, pid ${pid}, ${Date.now() - started} ms)`,
  );
  // The answer itself may reach a busy test process a little later than the kill.
  assert.ok(elapsed >= 1000 && elapsed < 1500, `answered after ${elapsed} ms`);
  await assertServesAgain(shim);
});

test('a memory bomb is killed at the memory limit with Runtime.ExitError saying out of memory', async () => {
  const shim = await start({ timeoutSeconds: 10 });
  const answer = await shim.invoke({ case: 'memory' });
  assert.equal(answer.errorType, 'Runtime.ExitError');
  assert.match(
    answer.json().errorMessage,
    /Runtime exited with error: signal: killed \(out of memory.*128 MB\)/,
  );
  assert.equal(answer.headers.get('x-hearth-max-memory-used-mb'), '128');
  await assertServesAgain(shim);
});

test("Hearth's Node runtime has Lambda's heap limit, 90% of the memory, and so does a worker thread started at init", async () => {
  const codeDir = await writeFunction({
    'index.mjs': `
import { getHeapStatistics } from 'node:v8';
import { Worker } from 'node:worker_threads';
const mb = (bytes) => Math.round(bytes / 1048576);
const worker = new Worker(
  "require('node:worker_threads').parentPort.postMessage(require('node:v8').getHeapStatistics().heap_size_limit)",
  { eval: true },
);
const workerLimit = await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
await worker.terminate();
export const handler = async () => ({ runtime: mb(getHeapStatistics().heap_size_limit), worker: mb(workerLimit) });
`,
  });
  dirs.push(codeDir);
  // With NODE_OPTIONS the runtime leaves V8's flags as they are (code-cache.ts); without, it resets
  // the heap flag while it starts and restores it before the function's code, through a deprecated
  // binding whose warning stays out of the function's log (also when deprecations are pending).
  const settings: Record<string, string>[] = [
    {},
    { NODE_OPTIONS: '--no-warnings' },
    { NODE_PENDING_DEPRECATION: '1' },
  ];
  for (const env of settings) {
    const shim = await startShim({
      codeDir,
      runtime: 'nodejs20.x',
      handler: 'index.handler',
      memoryMb: 1024,
      env,
    });
    shims.push(shim);
    const answer = await shim.invoke({});
    assert.equal(answer.errorType, null, answer.text);
    const limits = answer.json() as { runtime: number; worker: number };
    // The old space (921 MB) plus the young generation's few tens.
    assert.ok(
      limits.runtime >= 921 && limits.runtime < 1024,
      `runtime heap limit ${limits.runtime} MB with ${JSON.stringify(env)}`,
    );
    assert.equal(
      limits.worker,
      limits.runtime,
      `the worker thread has the same limit with ${JSON.stringify(env)}`,
    );
    assert.doesNotMatch(shim.stdout(), /DeprecationWarning/, `no warning with ${JSON.stringify(env)}`);
  }
});

test('process.exit(1) ends the invocation with Runtime.ExitError "exit status 1"', async () => {
  const shim = await start();
  const answer = await shim.invoke({ case: 'exit' }, { requestId: 'req-exit' });
  assert.deepEqual(answer.json(), {
    errorType: 'Runtime.ExitError',
    errorMessage: 'RequestId: req-exit Error: Runtime exited with error: exit status 1',
  });
  await assertServesAgain(shim);
});

test('/tmp is private, survives warm calls, and overflowing it fails the call and wipes it', async () => {
  const shim = await start({ timeoutSeconds: 20 });
  assert.equal((await shim.invoke({ case: 'write-tmp' })).json(), 'written');
  assert.equal((await shim.invoke({ case: 'read-tmp' })).json(), 'kept');
  const flood = await shim.invoke({ case: 'flood' });
  assert.equal(flood.errorType, 'Runtime.EphemeralStorageFull', flood.text);
  assert.match(flood.json().errorMessage, /\/tmp is full.*512 MB/);
  await assertServesAgain(shim);
  assert.equal((await shim.invoke({ case: 'read-tmp' })).json(), null, '/tmp was wiped');
});

test('portable isolation (no root needed): memory by RSS polling, /tmp as a watched TMPDIR', async () => {
  const shim = await start({ timeoutSeconds: 20, env: { HEARTH_ISOLATION: 'portable' } });
  await shim.waitForStderr(/memory by rss-polling, \/tmp by directory/);
  const bomb = await shim.invoke({ case: 'memory' });
  assert.equal(bomb.errorType, 'Runtime.ExitError');
  assert.match(bomb.json().errorMessage, /signal: killed \(out of memory/);
  await assertServesAgain(shim);
  assert.equal((await shim.invoke({ case: 'write-tmp' })).json(), 'written');
  const flood = await shim.invoke({ case: 'flood' });
  assert.equal(flood.errorType, 'Runtime.EphemeralStorageFull', flood.text);
  await assertServesAgain(shim);
  assert.equal((await shim.invoke({ case: 'read-tmp' })).json(), null, 'TMPDIR was wiped');
});

test("portable isolation with HEARTH_TMP_DIR: the instance's own /tmp is watched, capped and wiped", async () => {
  // Stands in for the pod's /tmp emptyDir that the controller names in HEARTH_TMP_DIR.
  const dir = await mkdtemp(join(tmpdir(), 'hearth-own-tmp-'));
  dirs.push(dir);
  await writeFile(join(dir, 'stale'), 'from an earlier instance');
  const shim = await start({
    timeoutSeconds: 20,
    env: { HEARTH_ISOLATION: 'portable', HEARTH_TMP_DIR: dir },
  });
  await shim.waitForStderr(/\/tmp by directory \(.*the instance's own \/tmp, watched\)/);
  assert.deepEqual(readdirSync(dir), [], 'emptied at start');
  // No TMPDIR of the shim's own: the function's environment decides, as on Lambda.
  assert.equal((await shim.invoke({ case: 'tmpdir' })).json(), process.env.TMPDIR ?? null);
  assert.equal((await shim.invoke({ case: 'write-at', dir })).json(), 'written');
  assert.equal((await shim.invoke({ case: 'read-at', dir })).json(), 'kept', 'survives warm calls');
  const flood = await shim.invoke({ case: 'flood-at', dir });
  assert.equal(flood.errorType, 'Runtime.EphemeralStorageFull', flood.text);
  assert.match(flood.json().errorMessage, /\/tmp is full.*512 MB/);
  await assertServesAgain(shim);
  assert.ok(existsSync(dir), 'the directory itself (a mount point on Kubernetes) stays');
  assert.deepEqual(readdirSync(dir), [], 'its contents were wiped');
  assert.equal((await shim.invoke({ case: 'read-at', dir })).json(), null);
});
