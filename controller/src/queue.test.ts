import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { runWorkers, WorkQueue } from './queue.js';

test('a key added many times while waiting is handed out once', async () => {
  const q = new WorkQueue();
  q.add('ns/a');
  q.add('ns/b');
  q.add('ns/a');
  q.add('ns/a');
  assert.equal(q.length, 2);
  assert.equal(await q.get(), 'ns/a');
  assert.equal(await q.get(), 'ns/b');
  assert.equal(q.length, 0);
});

test('a key added while it is processed is handled once more afterwards, never concurrently', async () => {
  const q = new WorkQueue();
  let running = 0;
  let maxRunning = 0;
  let runs = 0;
  const worker = runWorkers(
    q,
    async (key) => {
      assert.equal(key, 'ns/a');
      running++;
      maxRunning = Math.max(maxRunning, running);
      runs++;
      if (runs === 1) {
        // Changes arrive while the first reconcile is still going.
        q.add('ns/a');
        q.add('ns/a');
        q.add('ns/a');
      }
      await sleep(20);
      running--;
    },
    { workers: 4 },
  );
  q.add('ns/a');
  await sleep(150);
  q.shutDown();
  await worker;
  assert.equal(maxRunning, 1, 'never two reconciles of one key at once');
  assert.equal(runs, 2, 'the changes during the first run cause exactly one more');
});

test('failures back off exponentially per key and success resets the backoff', async () => {
  const q = new WorkQueue({ baseDelayMs: 10, maxDelayMs: 80 });
  assert.deepEqual(
    [1, 2, 3, 4, 5].map(() => q.backoffFor('ns/a')),
    [10, 20, 40, 80, 80],
  );
  assert.equal(q.backoffFor('ns/b'), 10, 'other keys have their own backoff');
  q.forget('ns/a');
  assert.equal(q.backoffFor('ns/a'), 10);
});

test('the overall rate limit spaces retries once the burst is used up', () => {
  const q = new WorkQueue({ baseDelayMs: 1, ratePerSecond: 10, burst: 2 });
  assert.equal(q.backoffFor('a'), 1);
  assert.equal(q.backoffFor('b'), 1);
  const third = q.backoffFor('c');
  assert.ok(third >= 90 && third <= 100, `third retry waits for a token (${third} ms)`);
});

test('a failing reconcile is retried with growing delays until it succeeds', async () => {
  const q = new WorkQueue({ baseDelayMs: 10 });
  const times: number[] = [];
  const worker = runWorkers(q, async () => {
    times.push(Date.now());
    if (times.length < 4) throw new Error('not yet');
  });
  q.add('ns/a');
  while (times.length < 4) await sleep(10);
  await sleep(50);
  q.shutDown();
  await worker;
  assert.equal(times.length, 4, 'no more runs after the success');
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  assert.ok(gaps[0]! >= 9 && gaps[1]! >= 19 && gaps[2]! >= 39, `gaps grow: ${gaps.join(', ')}`);
  assert.equal(q.failuresOf('ns/a'), 0);
});

test('requeueAfter brings a key back; the earliest of several delays wins', async () => {
  const q = new WorkQueue();
  let runs = 0;
  const worker = runWorkers(q, async () => {
    runs++;
    return runs === 1 ? { requeueAfterMs: 60 } : undefined;
  });
  q.add('ns/a');
  await sleep(30);
  assert.equal(runs, 1);
  await sleep(80);
  assert.equal(runs, 2);
  q.addAfter('ns/b', 5000);
  q.addAfter('ns/b', 20);
  await sleep(60);
  assert.equal(runs, 3, 'the 20 ms delay replaced the 5 s one');
  q.shutDown();
  await worker;
});
