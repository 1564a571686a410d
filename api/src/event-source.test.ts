import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventSourceLimits, validateEventSourceMappingSpec } from './event-source.js';

const base = { functionName: 'fn', source: { redisStream: { stream: 's' } } };

function problemPaths(extra: Record<string, unknown>): string[] {
  return validateEventSourceMappingSpec({ ...base, ...extra }).problems.map((p) => p.path);
}

test('defaults are Lambda’s', () => {
  const { spec, problems } = validateEventSourceMappingSpec(base);
  assert.deepEqual(problems, []);
  assert.equal(spec?.batchSize, 100);
  assert.equal(spec?.maximumBatchingWindowInSeconds, 0);
  assert.equal(spec?.maximumRetryAttempts, -1);
  assert.equal(spec?.maximumRecordAgeInSeconds, -1);
  assert.equal(spec?.parallelizationFactor, 1);
  assert.equal(spec?.bisectBatchOnFunctionError, false);
  assert.deepEqual(spec?.functionResponseTypes, []);
  assert.equal(spec?.startingPosition, 'LATEST');
});

const limits: [field: string, ok: number[], bad: number[]][] = [
  ['batchSize', [1, 10_000], [0, 10_001, 1.5]],
  ['maximumBatchingWindowInSeconds', [0, 300], [-1, 301]],
  ['maximumRetryAttempts', [-1, 0, 10_000], [-2, 10_001]],
  ['maximumRecordAgeInSeconds', [-1, 60, 604_800], [-2, 0, 59, 604_801]],
  ['parallelizationFactor', [1, 10], [0, 11]],
];

for (const [field, ok, bad] of limits) {
  test(`${field} accepts ${ok.join(', ')} and refuses ${bad.join(', ')}, naming the field`, () => {
    for (const value of ok) assert.deepEqual(problemPaths({ [field]: value }), [], `${field}=${value}`);
    for (const value of bad) {
      assert.ok(problemPaths({ [field]: value }).includes(`spec.${field}`), `${field}=${value}`);
    }
  });
}

test('the limits table holds Lambda’s documented bounds', () => {
  assert.deepEqual(EventSourceLimits.batchSize, { min: 1, max: 10_000, default: 100 });
  assert.deepEqual(EventSourceLimits.parallelizationFactor, { min: 1, max: 10, default: 1 });
});

test('functionResponseTypes takes only ReportBatchItemFailures, once', () => {
  assert.deepEqual(problemPaths({ functionResponseTypes: ['ReportBatchItemFailures'] }), []);
  assert.ok(
    problemPaths({ functionResponseTypes: ['Other'] }).some((p) =>
      p.startsWith('spec.functionResponseTypes'),
    ),
  );
  assert.ok(
    problemPaths({ functionResponseTypes: ['ReportBatchItemFailures', 'ReportBatchItemFailures'] }).some(
      (p) => p.startsWith('spec.functionResponseTypes'),
    ),
  );
});

test('bisectBatchOnFunctionError must be a boolean', () => {
  assert.deepEqual(problemPaths({ bisectBatchOnFunctionError: true }), []);
  assert.ok(problemPaths({ bisectBatchOnFunctionError: 'yes' }).includes('spec.bisectBatchOnFunctionError'));
});

test('a source must name exactly one kind', () => {
  assert.ok(problemPaths({ source: {} }).includes('spec.source'));
  assert.ok(
    problemPaths({
      source: { redisStream: { stream: 's' }, nats: { url: 'nats://x', stream: 'S' } },
    }).includes('spec.source'),
  );
});

test('AT_TIMESTAMP needs a timestamp, in RFC 3339', () => {
  assert.ok(problemPaths({ startingPosition: 'AT_TIMESTAMP' }).includes('spec.startingPositionTimestamp'));
  assert.deepEqual(
    problemPaths({ startingPosition: 'AT_TIMESTAMP', startingPositionTimestamp: '2026-01-02T03:04:05Z' }),
    [],
  );
  assert.ok(
    problemPaths({ startingPosition: 'AT_TIMESTAMP', startingPositionTimestamp: 'yesterday' }).includes(
      'spec.startingPositionTimestamp',
    ),
  );
});

test('an onFailure destination names exactly one target', () => {
  assert.deepEqual(problemPaths({ destinationConfig: { onFailure: { function: 'dlq' } } }), []);
  assert.ok(
    problemPaths({ destinationConfig: { onFailure: { function: 'dlq', stream: 'd' } } }).includes(
      'spec.destinationConfig.onFailure',
    ),
  );
});
