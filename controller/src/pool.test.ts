import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextPoolSize, totalDemand, wantedSize, type PoolState } from './pool.js';

const spec = (
  scaling: Partial<{ minWarm: number; maxInstances: number; idleSeconds: number }>,
  perInstance = 1,
) => ({
  concurrency: { perInstance, perRuntime: 1 },
  scaling: { minWarm: 0, maxInstances: 100, idleSeconds: 60, ...scaling },
});

test('wanted size is ceil(demand / perInstance) within [minWarm, maxInstances]', () => {
  assert.equal(wantedSize(0, spec({})), 0);
  assert.equal(wantedSize(5, spec({}, 2)), 3);
  assert.equal(wantedSize(0, spec({ minWarm: 2 })), 2);
  assert.equal(wantedSize(500, spec({ maxInstances: 10 })), 10);
});

test('demand counts in-flight and waiting calls of fresh reports only', () => {
  const now = 100_000;
  const reports = [
    { gateway: 'a', inFlight: 2, waiting: 3, at: now - 1000 },
    { gateway: 'b', inFlight: 1, waiting: 0, at: now },
    { gateway: 'gone', inFlight: 50, waiting: 50, at: now - 60_000 },
  ];
  assert.equal(totalDemand(reports, now), 6);
});

test('the pool grows at once and shrinks only after idleSeconds of lower demand', () => {
  const s = spec({ idleSeconds: 10 });
  let state: PoolState | undefined;
  state = nextPoolSize(state, 4, s, 0);
  assert.equal(state.size, 4, 'up at once');
  state = nextPoolSize(state, 1, s, 1000);
  assert.equal(state.size, 4, 'no shrink on the first lower report');
  state = nextPoolSize(state, 2, s, 5000);
  assert.equal(state.size, 4);
  state = nextPoolSize(state, 1, s, 10_999);
  assert.equal(state.size, 4, 'still inside the window');
  state = nextPoolSize(state, 1, s, 11_000);
  assert.equal(state.size, 2, 'down to the peak of the window');
  state = nextPoolSize(state, 0, s, 15_000);
  assert.equal(state.size, 2);
  state = nextPoolSize(state, 0, s, 21_000);
  assert.equal(state.size, 1, 'the next window ends at its peak (1, seen at 11 s)');
  state = nextPoolSize(state, 0, s, 31_000);
  assert.equal(state.size, 0, 'to zero when minWarm is 0 and idle');
});

test('a burst inside the window resets it; minWarm is a floor', () => {
  const s = spec({ idleSeconds: 10, minWarm: 1 });
  let state = nextPoolSize(undefined, 3, s, 0);
  state = nextPoolSize(state, 0, s, 1000);
  state = nextPoolSize(state, 3, s, 9000);
  assert.deepEqual(state, { size: 3 }, 'demand back at the size ends the window');
  state = nextPoolSize(state, 0, s, 10_000);
  state = nextPoolSize(state, 0, s, 19_000);
  assert.equal(state.size, 3);
  state = nextPoolSize(state, 0, s, 20_000);
  assert.equal(state.size, 1, 'never below minWarm');
  state = nextPoolSize(state, 0, s, 100_000);
  assert.equal(state.size, 1);
});

test('idleSeconds 0 shrinks on the first lower report', () => {
  const state = nextPoolSize({ size: 5 }, 0, spec({ idleSeconds: 0 }), 0);
  assert.equal(state.size, 0);
});
