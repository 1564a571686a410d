import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFunctionSpec } from '@hearth/api';
import { admissionScope, blockSize, ConcurrencyKeys } from './concurrency.js';

const fn = (name: string, reserved?: number) => {
  const { spec } = validateFunctionSpec({
    runtime: 'nodejs20.x',
    code: { inline: { files: {} } },
    concurrency: reserved === undefined ? {} : { reserved },
  });
  assert.ok(spec);
  return { name, spec };
};

test('a function with reserved concurrency runs on its reservation alone', () => {
  assert.deepEqual(admissionScope(fn('r', 50), 1000, 150), {
    key: ConcurrencyKeys.reserved('r'),
    limit: 50,
    reason: 'ReservedFunctionConcurrentInvocationLimitExceeded',
  });
  assert.equal(admissionScope(fn('zero', 0), 1000, 0).limit, 0, 'reserved 0 throttles everything');
});

test('the others share what the reservations leave of the account limit', () => {
  assert.deepEqual(admissionScope(fn('u'), 1000, 150), {
    key: ConcurrencyKeys.unreserved,
    limit: 850,
    reason: 'ConcurrentInvocationLimitExceeded',
  });
  assert.equal(admissionScope(fn('u'), 100, 400).limit, 0, 'never negative');
});

test('a block is a sixteenth of the limit, at most 16; small limits take one lease per call', () => {
  assert.equal(blockSize(1000), 16);
  assert.equal(blockSize(64), 4);
  assert.equal(blockSize(32), 2);
  assert.equal(blockSize(31), 1);
  assert.equal(blockSize(3), 1);
  assert.equal(blockSize(0), 1);
});
