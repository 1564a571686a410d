import assert from 'node:assert/strict';
import { test } from 'node:test';
import { imageCommand, validateFunctionSpec } from './function.js';

test('an image function starts as an AWS base image does unless imageConfig says otherwise', () => {
  assert.deepEqual(imageCommand({ handler: 'app.handler' }), {
    argv: ['/lambda-entrypoint.sh', 'app.handler'],
    workingDirectory: '/var/task',
  });
  assert.deepEqual(
    imageCommand({
      handler: 'ignored',
      imageConfig: { entryPoint: ['/usr/bin/python3', '-m', 'rt'], command: [], workingDirectory: '/app' },
    }),
    { argv: ['/usr/bin/python3', '-m', 'rt'], workingDirectory: '/app' },
  );
});

test('imageConfig needs an image, and an image needs the provided runtime; each problem names its field', () => {
  const problems = (spec: unknown) => validateFunctionSpec(spec).problems.map((p) => p.path);
  assert.deepEqual(problems({ runtime: 'provided.al2023', code: { image: 'fn:1' }, imageConfig: {} }), []);
  assert.deepEqual(
    problems({ runtime: 'nodejs20.x', code: { inline: { files: {} } }, imageConfig: { command: ['x'] } }),
    ['spec.imageConfig'],
  );
  assert.deepEqual(problems({ runtime: 'nodejs20.x', code: { image: 'fn:1' } }), ['spec.runtime']);
  assert.deepEqual(
    problems({
      runtime: 'provided.al2023',
      code: { image: 'fn:1' },
      imageConfig: { workingDirectory: 'rel' },
    }),
    ['spec.imageConfig.workingDirectory'],
  );
});

test('calls per runtime: for runtimes that take several at once, and at most 64 runtimes an instance', () => {
  const problems = (concurrency: unknown, runtime = 'nodejs20.x') =>
    validateFunctionSpec({ runtime, code: { inline: { files: {} } }, concurrency }).problems;
  assert.deepEqual(problems({ perInstance: 256, perRuntime: 64 }), []);
  assert.deepEqual(problems({ perInstance: 4, perRuntime: 4 }, 'provided.al2023'), []);
  const python = problems({ perInstance: 4, perRuntime: 2 }, 'python3.11');
  assert.deepEqual(
    python.map((p) => p.path),
    ['spec.concurrency.perRuntime'],
  );
  assert.match(python[0]!.message, /must be 1 for python3.11.*raise spec.concurrency.perInstance instead/);
  // Before calls per runtime, any perInstance over 64 made an instance that could not start.
  const wide = problems({ perInstance: 100 });
  assert.deepEqual(
    wide.map((p) => p.path),
    ['spec.concurrency.perInstance'],
  );
  assert.match(wide[0]!.message, /needs 100 runtime processes at 1 call\(s\) each.*at most 64/);
});
