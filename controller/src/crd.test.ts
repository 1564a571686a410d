import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { functionCrd, functionCrdYaml, toStructural } from './crd.js';

// Walking a CRD, an untyped JSON tree, is clearer with loose types.
/* eslint-disable @typescript-eslint/no-explicit-any */
import { CRD_FILE } from './gen-crd.js';

test('the committed CRD is what api/src/function.ts generates (run node controller/dist/gen-crd.js)', async () => {
  const committed = await readFile(CRD_FILE, 'utf8').catch(() => '(missing)');
  assert.equal(
    committed,
    functionCrdYaml(),
    'charts/hearth/crds/function.yaml is stale: run `npx tsc -b controller && node controller/dist/gen-crd.js`',
  );
});

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
  const walk = (node: any, path: string) => {
    if (!node['x-kubernetes-preserve-unknown-fields']) assert.ok(node.type, `${path} has a type`);
    for (const [k, v] of Object.entries(node.properties ?? {})) walk(v, `${path}.${k}`);
    if (node.items) walk(node.items, `${path}[]`);
  };
  walk(spec, 'spec');
  assert.deepEqual(
    version.additionalPrinterColumns.map((c: any) => c.name),
    ['Ready', 'Runtime', 'Instances', 'Revision', 'Age'],
  );
  assert.throws(() => toStructural({ anyOf: [{ type: 'string' }, { type: 'integer' }] }));
});
