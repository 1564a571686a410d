import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLEANUP_FINALIZER, dueTombstones, hasCleanupFinalizer } from './cleanup.js';

const now = 1_000_000;

test('tombstones whose retention has passed are purged; later ones are left alone', () => {
  const decision = dueTombstones(
    [
      { name: 'past', purgeAt: now - 1 },
      { name: 'exactly-now', purgeAt: now },
      { name: 'future', purgeAt: now + 1 },
    ],
    now,
    () => false,
  );
  assert.deepEqual(decision, { purge: ['past', 'exactly-now'], forget: [] });
});

test('a due tombstone of a function that exists again is forgotten, keeping its keys', () => {
  const decision = dueTombstones(
    [
      { name: 'back', purgeAt: now - 10 },
      { name: 'gone', purgeAt: now - 10 },
      { name: 'back-later', purgeAt: now + 10 },
    ],
    now,
    (name) => name.startsWith('back'),
  );
  assert.deepEqual(decision, { purge: ['gone'], forget: ['back'] });
});

test('nothing to sweep without tombstones', () => {
  assert.deepEqual(
    dueTombstones([], now, () => false),
    { purge: [], forget: [] },
  );
});

test('the cleanup finalizer is recognised among others', () => {
  assert.equal(hasCleanupFinalizer({ finalizers: ['other.io/x', CLEANUP_FINALIZER] }), true);
  assert.equal(hasCleanupFinalizer({ finalizers: ['other.io/x'] }), false);
  assert.equal(hasCleanupFinalizer({}), false);
  assert.equal(hasCleanupFinalizer(undefined), false);
});
