import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFunctionSpec, type FunctionSpec } from '@hearth/api';
import { canonicalJson, instanceShape, revisionHash } from './revision.js';

function spec(input: Record<string, unknown>): FunctionSpec {
  const result = validateFunctionSpec(input);
  if (!result.spec) throw new Error(JSON.stringify(result.problems));
  return result.spec;
}

const base = {
  runtime: 'nodejs20.x',
  code: { inline: { files: { 'index.mjs': 'export const handler = async (e) => e' } } },
};

test('the revision does not depend on key order or on defaults being written out', () => {
  const a = spec(base);
  const b = spec({
    memory: '128Mi',
    code: { inline: { files: { 'index.mjs': 'export const handler = async (e) => e' } } },
    handler: 'index.handler',
    runtime: 'nodejs20.x',
  });
  assert.match(revisionHash(a), /^[0-9a-f]{10}$/);
  assert.equal(revisionHash(a), revisionHash(b));
  assert.equal(
    canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } }),
    '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}',
  );
});

test("an image's start command is part of its revision", () => {
  const image = { runtime: 'provided.al2023', code: { image: 'fn:1' } };
  const plain = revisionHash(spec(image));
  assert.notEqual(revisionHash(spec({ ...image, imageConfig: { command: ['app.other'] } })), plain);
  assert.notEqual(revisionHash(spec({ ...image, imageConfig: { workingDirectory: '/app' } })), plain);
});

test('everything that shapes an instance changes the revision', () => {
  const original = revisionHash(spec(base));
  const changes: Record<string, unknown>[] = [
    { code: { inline: { files: { 'index.mjs': 'export const handler = async () => 1' } } } },
    { code: { inline: { files: { 'index.mjs': 'export const handler = async (e) => e', 'util.mjs': '' } } } },
    { runtime: 'nodejs22.x' },
    { handler: 'index.other' },
    { memory: '256Mi' },
    { timeoutSeconds: 10 },
    { ephemeralStorage: '1Gi' },
    { env: [{ name: 'A', value: '1' }] },
    { concurrency: { perInstance: 4 } },
    { concurrency: { perInstance: 4, perRuntime: 4 } },
  ];
  const seen = new Set([original]);
  for (const change of changes) {
    const revision = revisionHash(spec({ ...base, ...change }));
    assert.ok(!seen.has(revision), `${JSON.stringify(change)} must give a new revision`);
    seen.add(revision);
  }
});

test('scaling, reserved concurrency and async settings keep the revision (no restart)', () => {
  const original = revisionHash(spec(base));
  for (const change of [
    { scaling: { minWarm: 2, maxInstances: 5, idleSeconds: 10 } },
    { concurrency: { reserved: 7 } },
    { async: { maxRetryAttempts: 0 } },
  ]) {
    assert.equal(revisionHash(spec({ ...base, ...change })), original, JSON.stringify(change));
  }
});

test('calls per runtime at their default leave the revision as it was before they existed', () => {
  // Otherwise upgrading Hearth would restart every warm instance of every function.
  assert.doesNotMatch(canonicalJson(instanceShape(spec(base))), /perRuntime/);
  assert.match(
    canonicalJson(instanceShape(spec({ ...base, concurrency: { perRuntime: 2 } }))),
    /"perRuntime":2/,
  );
});
