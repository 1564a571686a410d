import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1EndpointSlice } from '@kubernetes/client-node';
import { registryName, revisionInstances, SERVICE_NAME_LABEL } from './kube-registry.js';
import { revisionObjectName } from './kube-objects.js';

test('a Function is called by its name in the default namespace, as name.namespace elsewhere', () => {
  assert.equal(registryName('default', 'hello', 'default'), 'hello');
  assert.equal(registryName('team-b', 'hello', 'default'), 'hello.team-b');
  assert.equal(registryName('team-a', 'hello', 'team-a'), 'hello');
  assert.equal(registryName('default', 'hello', 'team-a'), 'hello.default');
});

test("a revision's instances are found by the Function's own name and named for the registry", () => {
  const service = revisionObjectName('hello', 'r1');
  const slices: V1EndpointSlice[] = [
    {
      metadata: { name: `${service}-x`, labels: { [SERVICE_NAME_LABEL]: service } },
      addressType: 'IPv4',
      ports: [{ name: 'invoke', port: 8080 }],
      endpoints: [{ addresses: ['10.0.0.7'], conditions: { ready: true } }],
    },
  ];
  const instances = revisionInstances(slices, 'hello', 'hello.team-b', ['r1']).get('r1');
  assert.deepEqual(
    instances?.map((i) => [i.function, i.url]),
    [['hello.team-b', 'http://10.0.0.7:8080']],
  );
});
