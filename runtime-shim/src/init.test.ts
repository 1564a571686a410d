import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { nodeHandlerFunction, removeFunction, startShim, type RunningShim } from './testing.js';

const shims: RunningShim[] = [];
const dirs: string[] = [];
after(async () => {
  await Promise.all(shims.map((shim) => shim.stop()));
  await Promise.all(dirs.map(removeFunction));
});

async function start(handler: string, env: Record<string, string> = {}) {
  const codeDir = await nodeHandlerFunction(handler);
  dirs.push(codeDir);
  const shim = await startShim({ codeDir, env });
  shims.push(shim);
  return { shim, codeDir };
}

test('an init error is the answer to the next invoke, and the invoke after it runs init again', async () => {
  // Fails to load the first time only: the second init succeeds.
  const { shim } = await start(`
    import { existsSync, writeFileSync } from 'node:fs';
    const marker = process.env.LAMBDA_TASK_ROOT + '/.loaded-once';
    if (!existsSync(marker)) {
      writeFileSync(marker, '');
      throw new Error('Cannot find module "missing-dependency"');
    }
    export default async () => 'loaded';
  `);
  const failed = await shim.invoke({});
  assert.equal(failed.status, 200);
  assert.equal(failed.headers.get('x-hearth-function-error'), 'Unhandled');
  assert.equal(failed.errorType, 'Runtime.ImportModuleError');
  assert.deepEqual(failed.json(), {
    errorType: 'Runtime.ImportModuleError',
    errorMessage: 'Cannot find module "missing-dependency"',
  });
  assert.ok(failed.initDurationMs! > 0);
  const recovered = await shim.invoke({});
  assert.equal(recovered.json(), 'loaded');
  assert.ok(recovered.initDurationMs! > 0, 'the fresh runtime reports its init');
  const warm = await shim.invoke({});
  assert.equal(warm.initDurationMs, undefined);
});

test('an init that takes too long ends with Runtime.InitTimeout', async () => {
  const { shim } = await start(
    `await new Promise((resolve) => setTimeout(resolve, 60_000));
     export default async () => 'never';`,
    { HEARTH_INIT_TIMEOUT_MS: '300' },
  );
  const answer = await shim.invoke({});
  assert.equal(answer.errorType, 'Runtime.InitTimeout');
  assert.match(answer.json().errorMessage, /Init phase timed out after 0.30 seconds/);
});
