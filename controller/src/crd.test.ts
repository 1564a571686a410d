import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import {
  eventSourceMappingCrd,
  eventSourceMappingCrdYaml,
  functionCrd,
  functionCrdYaml,
  toStructural,
} from './crd.js';

// Walking a CRD, an untyped JSON tree, is clearer with loose types.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { CRD_FILE, ESM_CRD_FILE } from './gen-crd.js';

test('the committed CRD is what api/src/function.ts generates (run node controller/dist/gen-crd.js)', async () => {
  const committed = await readFile(CRD_FILE, 'utf8').catch(() => '(missing)');
  assert.equal(
    committed,
    functionCrdYaml(),
    'charts/hearth/crds/function.yaml is stale: run `npx tsc -b controller && node controller/dist/gen-crd.js`',
  );
});

test('the committed EventSourceMapping CRD is what api/src/event-source.ts generates', async () => {
  const committed = await readFile(ESM_CRD_FILE, 'utf8').catch(() => '(missing)');
  assert.equal(
    committed,
    eventSourceMappingCrdYaml(),
    'charts/hearth/crds/eventsourcemapping.yaml is stale: run `npx tsc -b controller && node controller/dist/gen-crd.js`',
  );
});

/** Fails unless every node of a CRD schema has a type (or takes any value), as structural schemas must. */
function assertStructural(node: any, path: string) {
  if (!node['x-kubernetes-preserve-unknown-fields']) assert.ok(node.type, `${path} has a type`);
  for (const [k, v] of Object.entries(node.properties ?? {})) assertStructural(v, `${path}.${k}`);
  if (node.items) assertStructural(node.items, `${path}[]`);
  if (node.additionalProperties) assertStructural(node.additionalProperties, `${path}{}`);
}

test('the schema is structural: every node typed, enums for runtimes, defaults kept', () => {
  const crd = functionCrd() as any;
  const version = crd.spec.versions[0];
  assert.deepEqual(crd.spec.names.shortNames, ['fn']);
  assert.deepEqual(version.subresources, { status: {} });
  const spec = version.schema.openAPIV3Schema.properties.spec;
  assert.deepEqual(spec.properties.runtime.enum, [
    'nodejs20.x',
    'nodejs22.x',
    'python3.11',
    'provided.al2023',
  ]);
  assert.equal(spec.properties.memory.default, '128Mi');
  assert.equal(spec.properties.timeoutSeconds.maximum, 900);
  assert.deepEqual(spec.properties.code.properties.inline.properties.files.additionalProperties, {
    type: 'string',
  });
  assertStructural(spec, 'spec');
  assert.deepEqual(
    version.additionalPrinterColumns.map((c: any) => c.name),
    ['Ready', 'Runtime', 'Instances', 'Revision', 'Age'],
  );
  assert.throws(() => toStructural({ anyOf: [{ type: 'string' }, { type: 'integer' }] }));
});

test('the EventSourceMapping schema: structural, enums and defaults kept, the cross-field rules as CEL', () => {
  const crd = eventSourceMappingCrd() as any;
  const version = crd.spec.versions[0];
  assert.deepEqual(crd.spec.names.shortNames, ['esm']);
  assert.equal(crd.spec.scope, 'Namespaced');
  assert.deepEqual(version.subresources, { status: {} });
  const spec = version.schema.openAPIV3Schema.properties.spec;
  assertStructural(spec, 'spec');
  assert.deepEqual(spec.properties.startingPosition, {
    type: 'string',
    enum: ['TRIM_HORIZON', 'LATEST', 'AT_TIMESTAMP'],
    default: 'LATEST',
  });
  assert.deepEqual(spec.properties.functionResponseTypes.items.enum, ['ReportBatchItemFailures']);
  assert.equal(spec.properties.functionResponseTypes.maxItems, 1);
  assert.equal(spec.properties.source.properties.http.properties.auth.default, 'gateway');
  assert.deepEqual(spec.properties.source.properties.schedule.properties.input, {
    description: 'A constant event sent instead of the Scheduled Event',
    'x-kubernetes-preserve-unknown-fields': true,
  });
  const rules = (node: any) => (node['x-kubernetes-validations'] ?? []).map((v: any) => v.message);
  assert.match(
    rules(spec.properties.source).join(),
    /exactly one of schedule, redisStream, nats, http, bucket/,
  );
  assert.match(rules(spec).join(), /spec.startingPositionTimestamp is required/);
  assert.match(rules(spec.properties.maximumRecordAgeInSeconds).join(), /-1 or between 60 and 604800/);
  assert.match(
    rules(spec.properties.destinationConfig.properties.onFailure).join(),
    /exactly one of function, url, stream/,
  );
  assert.deepEqual(
    version.additionalPrinterColumns.map((c: any) => c.name),
    ['Function', 'State', 'Last Result', 'Position', 'Age'],
  );
  assert.deepEqual(version.schema.openAPIV3Schema.properties.status.properties.state.enum, [
    'Creating',
    'Enabled',
    'Disabled',
    'Failed',
  ]);
});
