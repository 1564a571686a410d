import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFunctionSpec, type Condition, type FunctionResource } from '@hearth/api';
import { observedState } from './mapping.js';
import { servedFromStatus } from './kube-backend.js';

const spec = validateFunctionSpec({
  runtime: 'nodejs20.x',
  code: { inline: { files: { 'index.mjs': '' } } },
}).spec!;
const ready = (status: Condition['status'], reason: string, message = ''): Condition => ({
  type: 'Ready',
  status,
  reason,
  message,
  lastTransitionTime: '2026-01-01T00:00:00Z',
});

function fn(generation: number, status?: FunctionResource['status']): FunctionResource {
  return {
    apiVersion: 'hearth.dev/v1alpha1',
    kind: 'Function',
    metadata: { name: 'f', generation },
    spec,
    ...(status ? { status } : {}),
  };
}

test('a Function the controller has not reported on is Pending', () => {
  assert.equal(servedFromStatus(fn(1)), undefined);
  assert.deepEqual(observedState(spec, servedFromStatus(fn(1))).State, 'Pending');
});

test('Ready for the current generation is Active and Successful; for an older one, an update in progress', () => {
  const current = servedFromStatus(
    fn(2, { observedGeneration: 2, revision: 'r2', conditions: [ready('True', 'Ready')] }),
  );
  assert.deepEqual(observedState(spec, current), { State: 'Active', LastUpdateStatus: 'Successful' });
  const older = servedFromStatus(
    fn(3, { observedGeneration: 2, revision: 'r2', conditions: [ready('True', 'Ready')] }),
  );
  assert.deepEqual(
    [observedState(spec, older).State, observedState(spec, older).LastUpdateStatus],
    ['Active', 'InProgress'],
  );
  const scaling = servedFromStatus(
    fn(3, { observedGeneration: 3, revision: 'r3', conditions: [ready('False', 'PoolNotReady')] }),
  );
  assert.equal(observedState(spec, scaling).LastUpdateStatus, 'InProgress');
});

test('a terminal Ready=False for the current generation is Failed with its reason', () => {
  const failed = servedFromStatus(
    fn(2, {
      observedGeneration: 2,
      conditions: [ready('False', 'InvalidSpec', 'spec.memory must be between 128Mi and 10Gi')],
    }),
  );
  const state = observedState(spec, failed);
  assert.equal(state.State, 'Failed');
  assert.equal(state.LastUpdateStatus, 'Failed');
  assert.match(state.StateReason ?? '', /InvalidSpec: spec.memory/);
});
