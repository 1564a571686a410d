import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeProblem, loadManifests, parseManifests } from './manifests.js';

const good = `
apiVersion: hearth.dev/v1alpha1
kind: Function
metadata: { name: echo }
spec:
  runtime: nodejs20.x
  code: { inline: { files: { index.mjs: "export const handler = async (e) => e" } } }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: unrelated }
`;

test('a manifest file yields its Functions with defaults filled in, other kinds skipped', () => {
  const { resources, problems } = parseManifests('a.yaml', good);
  assert.deepEqual(problems, []);
  assert.equal(resources.length, 1);
  assert.equal(resources[0]!.metadata.name, 'echo');
  assert.equal(resources[0]!.metadata.namespace, 'default');
  assert.equal(resources[0]!.spec.memory, '128Mi');
  assert.equal(resources[0]!.spec.handler, 'index.handler');
});

test('bad manifests are reported naming the file and the field', () => {
  const bad = `
apiVersion: hearth.dev/v1alpha1
kind: Function
metadata: { name: big }
spec:
  runtime: nodejs20.x
  memory: 64Gi
  code: { inline: { files: { a.mjs: "" } } }
---
apiVersion: hearth.dev/v1alpha1
kind: Function
metadata: { name: two-sources }
spec:
  runtime: nodejs20.x
  code: { inline: { files: { a.mjs: "" } }, configMap: { name: c } }
---
apiVersion: hearth.dev/v1alpha1
kind: Function
metadata: { name: Not_A_Name }
spec: {}
`;
  const { resources, problems } = parseManifests('bad.yaml', bad);
  assert.equal(resources.length, 0);
  assert.deepEqual(
    problems.map((p) => [p.name, p.path]),
    [
      ['big', 'spec.memory'],
      ['two-sources', 'spec.code'],
      [undefined, 'metadata.name'],
    ],
  );
  assert.match(parseManifests('broken.yaml', 'a: [').problems[0]!.path, /yaml/);
});

test('a directory is read file by file; a name declared twice is a problem, not a crash', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hearth-manifests-'));
  try {
    await writeFile(join(dir, 'a.yaml'), good);
    await writeFile(join(dir, 'b.yml'), good);
    await writeFile(join(dir, 'notes.txt'), 'not a manifest');
    const set = await loadManifests(dir);
    assert.deepEqual([...set.functions.keys()], ['echo']);
    assert.equal(set.functions.get('echo')!.file, 'a.yaml');
    assert.equal(set.problems.length, 1);
    assert.match(set.problems[0]!.message, /also declared in a\.yaml/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('EventSourceMappings are read beside Functions, validated, problems naming the mapping and the field', () => {
  const text = `
apiVersion: hearth.dev/v1alpha1
kind: EventSourceMapping
metadata: { name: every-minute }
spec:
  functionName: echo
  source: { schedule: { expression: "rate(1 minute)" } }
---
apiVersion: hearth.dev/v1alpha1
kind: EventSourceMapping
metadata: { name: orders }
spec:
  functionName: echo
  batchSize: 0
  source: { redisStream: { stream: orders } }
---
apiVersion: hearth.dev/v1alpha1
kind: EventSourceMapping
metadata: { name: noon }
spec:
  functionName: echo
  source: { schedule: { expression: "cron(0 12 * * * *)" } }
`;
  const { resources, mappings, problems } = parseManifests('sources.yaml', text);
  assert.equal(resources.length, 0);
  assert.deepEqual(
    mappings.map((m) => [m.metadata.name, m.metadata.namespace, m.spec.source.schedule?.timezone]),
    [['every-minute', 'default', 'UTC']],
  );
  assert.deepEqual(
    problems.map((p) => [p.kind, p.name, p.path]),
    [
      ['EventSourceMapping', 'orders', 'spec.batchSize'],
      ['EventSourceMapping', 'noon', 'spec.source.schedule.expression'],
    ],
  );
  assert.match(
    describeProblem(problems[0]!),
    /^sources\.yaml \(EventSourceMapping orders\): spec\.batchSize /,
  );
});
