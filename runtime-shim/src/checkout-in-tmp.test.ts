import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { removeFunction, SHIM_MAIN, startShim, writeFunction, type RunningShim } from './testing.js';

// A checkout in a temp dir (CI clones, quick tries) puts the shim's own runtimes under /tmp, which
// the private /tmp of an instance hides: they must still be there for the runtime.
const shims: RunningShim[] = [];
const dirs: string[] = [];
after(async () => {
  await Promise.all(shims.map((shim) => shim.stop()));
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

test('a shim installed under /tmp runs Node and Python functions whose code is under /tmp too', async () => {
  const packageDir = dirname(dirname(SHIM_MAIN));
  const copy = await mkdtemp(join(tmpdir(), 'hearth-checkout-'));
  dirs.push(copy);
  const shimCopy = join(copy, 'runtime-shim');
  // Without the TypeScript build info, as an installed shim (images/bundle.mjs leaves it out too).
  for (const part of ['dist', 'runtimes', 'package.json'])
    await cp(join(packageDir, part), join(shimCopy, part), {
      recursive: true,
      filter: (source) => !source.endsWith('.tsbuildinfo'),
    });
  await symlink(join(dirname(packageDir), 'node_modules'), join(copy, 'node_modules'));

  const nodeCode = await writeFunction({
    'index.mjs': 'export const handler = async (e) => ({ node: e.n + 1 });',
  });
  const pythonCode = await writeFunction({
    'app.py': 'def handler(event, context):\n    return {"python": event["n"] * 2}\n',
  });
  dirs.push(nodeCode, pythonCode);
  for (const [codeDir, runtime, handler, expected] of [
    [nodeCode, 'nodejs20.x', 'index.handler', { node: 2 }],
    [pythonCode, 'python3.11', 'app.handler', { python: 2 }],
  ] as const) {
    const shim = await startShim({ codeDir, runtime, handler, entry: join(shimCopy, 'dist', 'main.cjs') });
    shims.push(shim);
    const answer = await shim.invoke({ n: 1 });
    assert.equal(answer.errorType, null, `${runtime}: ${answer.text}\n${shim.stdout()}`);
    assert.deepEqual(answer.json(), expected);
  }
  await Promise.all([nodeCode, pythonCode].map(removeFunction));
});
