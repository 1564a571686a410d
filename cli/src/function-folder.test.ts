import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CodeArchiveLimits } from '@hearth/api';
import { configurationFields, packageSizeProblem, parseManifest } from './function-folder.js';

test('a manifest is checked before anything is uploaded, naming the field', () => {
  const good = { name: 'orders', runtime: 'nodejs20.x', handler: 'index.handler' };
  assert.deepEqual(parseManifest(good, 'hearth.json'), good);
  assert.throws(() => parseManifest({ ...good, name: 'Orders' }, 'hearth.json'), /"name"/);
  assert.throws(
    () => parseManifest({ ...good, runtime: 'java8' }, 'hearth.json'),
    /"runtime" must be one of nodejs20.x/,
  );
  assert.throws(
    () => parseManifest({ ...good, memorySize: 64 }, 'hearth.json'),
    /"memorySize" must be an integer from 128 to 10240/,
  );
  assert.throws(() => parseManifest({ ...good, timeout: 901 }, 'hearth.json'), /"timeout"/);
  assert.throws(() => parseManifest({ ...good, environment: { A: 1 } }, 'hearth.json'), /"environment"/);
});

test('a manifest maps onto Lambda configuration fields with its defaults', () => {
  assert.deepEqual(
    configurationFields({
      name: 'a',
      runtime: 'python3.11',
      handler: 'app.handler',
      memorySize: 512,
      environment: { K: 'v' },
    }),
    {
      Runtime: 'python3.11',
      Handler: 'app.handler',
      Description: '',
      MemorySize: 512,
      Timeout: 3,
      EphemeralStorage: { Size: 512 },
      Environment: { Variables: { K: 'v' } },
    },
  );
});

test('packages over 50 MB zipped or 250 MB unzipped are refused with a way out', () => {
  assert.equal(packageSizeProblem(1000, 5000), undefined);
  assert.match(
    packageSizeProblem(CodeArchiveLimits.zippedBytes + 1, 1) ?? '',
    /zipped.*npm prune --omit=dev/,
  );
  assert.match(packageSizeProblem(1, CodeArchiveLimits.unzippedBytes + 1) ?? '', /unpack to/);
});
