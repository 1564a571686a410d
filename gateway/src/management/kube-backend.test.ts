import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFunctionSpec, type Condition, type FunctionResource } from '@hearth/api';
import {
  applyEventInvokeConfig,
  applyReservedConcurrency,
  applyUpdateConfiguration,
  observedState,
} from './mapping.js';
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
    metadata: {
      name: 'f',
      generation,
      annotations: { 'app.kubernetes.io/managed-by': 'hearth-management-api' },
    },
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
  // Scaling up from a serving instance of the current revision is no update in progress.
  const scalingUp = servedFromStatus(
    fn(3, {
      observedGeneration: 3,
      revision: 'r3',
      conditions: [ready('False', 'PoolNotReady', '1/2 instances ready')],
      instances: { desired: 2, ready: 1, busy: 1 },
    }),
  );
  assert.deepEqual(observedState(spec, scalingUp), { State: 'Active', LastUpdateStatus: 'Successful' });
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

test('a new reservation or event invoke config is no update: the status of the generation before still stands', () => {
  const now = new Date('2026-01-02T03:04:05Z');
  const managed = fn(2, { observedGeneration: 2, revision: 'r2', conditions: [ready('True', 'Ready')] });
  // The API server bumps the generation of every spec change; the controller has not seen it yet.
  const written = (resource: FunctionResource): FunctionResource => ({
    ...resource,
    metadata: { ...resource.metadata, generation: resource.metadata.generation! + 1 },
  });
  const reserved = written(
    applyReservedConcurrency(managed, { ReservedConcurrentExecutions: 5 }, 0, 1000, now),
  );
  assert.equal(observedState(reserved.spec, servedFromStatus(reserved)).LastUpdateStatus, 'Successful');
  const destinations = written(applyEventInvokeConfig(reserved, { MaximumRetryAttempts: 0 }, false, now));
  assert.deepEqual(observedState(destinations.spec, servedFromStatus(destinations)), {
    State: 'Active',
    LastUpdateStatus: 'Successful',
  });

  // An update after it is in progress until the controller has seen it...
  const timeout = written(applyUpdateConfiguration(destinations, { Timeout: 9 }, now));
  assert.equal(observedState(timeout.spec, servedFromStatus(timeout)).LastUpdateStatus, 'InProgress');
  // ...and stays so when a reservation comes while it rolls out, until the controller sees the update.
  const meanwhile = written(
    applyReservedConcurrency(timeout, { ReservedConcurrentExecutions: 7 }, 0, 1000, now),
  );
  assert.equal(observedState(meanwhile.spec, servedFromStatus(meanwhile)).LastUpdateStatus, 'InProgress');
  const seen = {
    ...meanwhile,
    status: { ...meanwhile.status, observedGeneration: timeout.metadata.generation },
  };
  assert.equal(observedState(seen.spec, servedFromStatus(seen)).LastUpdateStatus, 'Successful');

  // An edit of the code or configuration by hand (kubectl) is an update again.
  const edited = written({ ...reserved, spec: { ...reserved.spec, timeoutSeconds: 10 } });
  assert.equal(observedState(edited.spec, servedFromStatus(edited)).LastUpdateStatus, 'InProgress');
});
