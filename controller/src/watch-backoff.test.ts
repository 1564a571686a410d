import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WatchBackoff } from './watch-backoff.js';

test('a watch failing at once backs off, doubling to the cap; only one that stayed up a while starts over', () => {
  const backoff = new WatchBackoff(500, 30_000, 30_000);
  let now = 1_000_000;
  const failAfter = (upMs: number) => {
    backoff.connected(now);
    now += upMs;
    return backoff.next(now);
  };
  // A list that succeeds and a watch that fails right after: the failures still add up.
  assert.deepEqual([failAfter(10), failAfter(10), failAfter(10), failAfter(10)], [500, 1000, 2000, 4000]);
  for (let i = 0; i < 10; i++) failAfter(10);
  assert.equal(failAfter(10), 30_000, 'capped');
  assert.equal(failAfter(31_000), 500, 'a watch that held for 30 s starts the backoff over');
  assert.equal(failAfter(10), 1000);
});
