import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFunctionSpec, type InstanceEndpoint } from '@hearth/api';
import { functionDetails } from './details.js';

function spec(extra: Record<string, unknown> = {}) {
  const result = validateFunctionSpec({
    runtime: 'nodejs20.x',
    handler: 'index.handler',
    code: { inline: { files: { 'index.mjs': 'export const handler = async () => 1;' } } },
    ...extra,
  });
  assert.ok(result.spec, JSON.stringify(result.problems));
  return result.spec;
}

const instance = (id: string, revision: string, state: Partial<InstanceEndpoint> = {}): InstanceEndpoint => ({
  id,
  function: 'orders',
  revision,
  url: `http://127.0.0.1:1000${id}`,
  ready: true,
  draining: false,
  ...state,
});

test('details: the concurrency and scaling a Function declares, its defaults filled in', () => {
  assert.deepEqual(functionDetails('orders', spec(), undefined, []), {
    name: 'orders',
    concurrency: { perInstance: 1, perRuntime: 1 },
    scaling: { minWarm: 0, maxInstances: 100, idleSeconds: 300 },
    instances: { ready: 0, starting: 0, draining: 0 },
  });
  const declared = functionDetails(
    'orders',
    spec({ concurrency: { reserved: 5, perInstance: 8, perRuntime: 8 }, scaling: { minWarm: 1 } }),
    'r2',
    [],
  );
  assert.deepEqual(declared.concurrency, { perInstance: 8, perRuntime: 8, reserved: 5 });
  assert.equal(declared.scaling.minWarm, 1);
});

test('details: instances counted as calls see them (ready on the served revision, starting, draining)', () => {
  const details = functionDetails('orders', spec(), 'r2', [
    instance('1', 'r2'),
    instance('2', 'r2'),
    instance('3', 'r2', { ready: false }),
    instance('4', 'r2', { draining: true }),
    // An earlier revision's instance still up during a rollout takes no new calls.
    instance('5', 'r1'),
    instance('6', 'r1', { ready: false, draining: true }),
  ]);
  assert.deepEqual(details.instances, { ready: 2, starting: 1, draining: 3 });
});
