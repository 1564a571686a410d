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
