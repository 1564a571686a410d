import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failedStatus, poolStatus, setCondition } from './conditions.js';

const t0 = '2026-01-01T00:00:00Z';
const t1 = '2026-01-01T00:01:00Z';

test('lastTransitionTime changes only when the status does', () => {
  let c = setCondition([], { type: 'Ready', status: 'False', reason: 'A' }, 1, t0);
  c = setCondition(c, { type: 'Ready', status: 'False', reason: 'B', message: 'm' }, 2, t1);
  assert.equal(c[0]!.lastTransitionTime, t0);
  assert.equal(c[0]!.reason, 'B');
  assert.equal(c[0]!.observedGeneration, 2);
  c = setCondition(c, { type: 'Ready', status: 'True', reason: 'Ready' }, 2, t1);
  assert.equal(c[0]!.lastTransitionTime, t1);
  assert.equal(c.length, 1);
});

test('a pool short of its size is not Ready; a full one (or one at zero) is', () => {
  const scaling = poolStatus(
    undefined,
    3,
    { revision: 'r', desired: 2, ready: 1, busy: 0, oldRevisions: 1 },
    t0,
  );
  const byType = Object.fromEntries(scaling.conditions!.map((c) => [c.type, c]));
  assert.equal(scaling.observedGeneration, 3);
  assert.equal(byType.CodeReady!.status, 'True');
  assert.equal(byType.PoolReady!.status, 'False');
  assert.match(byType.PoolReady!.message!, /1\/2 instances ready, 1 old revision/);
  assert.equal(byType.Ready!.status, 'False');
  const zero = poolStatus(scaling, 3, { revision: 'r', desired: 0, ready: 0, busy: 0, oldRevisions: 0 }, t1);
  assert.equal(zero.conditions!.find((c) => c.type === 'PoolReady')!.reason, 'ScaledToZero');
  assert.equal(zero.conditions!.find((c) => c.type === 'Ready')!.status, 'True');
  assert.deepEqual(zero.instances, { desired: 0, ready: 0, busy: 0 });
});

test('a terminal failure of a new generation names its reason', () => {
  const ready = poolStatus(
    undefined,
    1,
    { revision: 'r', desired: 0, ready: 0, busy: 0, oldRevisions: 0 },
    t0,
  );
  const failed = failedStatus(
    ready,
    2,
    { condition: 'CodeReady', reason: 'UnsupportedCodeSource', message: 'spec.code.image ...' },
    'r2',
    t1,
  );
  assert.equal(failed.conditions!.find((c) => c.type === 'CodeReady')!.status, 'False');
  assert.equal(failed.conditions!.find((c) => c.type === 'Ready')!.reason, 'UnsupportedCodeSource');
  assert.equal(failed.revision, 'r2');
});
