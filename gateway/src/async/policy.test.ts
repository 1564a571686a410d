import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BACKLOG_DEPTH_MARGIN,
  BACKLOG_READING_MS,
  BACKLOG_READING_STORES,
  backlogReadingSuffices,
  LAMBDA_REQUEUE_BACKOFF,
  LAMBDA_RETRY_DELAYS_MS,
  functionErrorRetryDelayMs,
  isEventTooOld,
  isUsableRequestId,
  nextStep,
  REQUEUE_JITTER,
  requeueBackoffMs,
  type AsyncPolicy,
  type BacklogReading,
} from './policy.js';

const lambda: AsyncPolicy = {
  maxRetryAttempts: 2,
  maxEventAgeSeconds: 21_600,
  retryDelaysMs: LAMBDA_RETRY_DELAYS_MS,
  requeueBackoff: LAMBDA_REQUEUE_BACKOFF,
};

test('a function error is retried after 1 minute, then 2 minutes, then dead-lettered', () => {
  const fresh = { requeues: 0, ageMs: 1000 };
  assert.deepEqual(nextStep({ kind: 'functionError' }, { ...fresh, functionErrors: 1 }, lambda), {
    action: 'retry',
    delayMs: 60_000,
    usesAttempt: true,
  });
  assert.deepEqual(nextStep({ kind: 'functionError' }, { ...fresh, functionErrors: 2 }, lambda), {
    action: 'retry',
    delayMs: 120_000,
    usesAttempt: true,
  });
  assert.deepEqual(nextStep({ kind: 'functionError' }, { ...fresh, functionErrors: 3 }, lambda), {
    action: 'deadLetter',
    condition: 'RetriesExhausted',
  });
});

test('maxRetryAttempts 0 dead-letters on the first function error', () => {
  const step = nextStep(
    { kind: 'functionError' },
    { functionErrors: 1, requeues: 0, ageMs: 0 },
    { ...lambda, maxRetryAttempts: 0 },
  );
  assert.deepEqual(step, { action: 'deadLetter', condition: 'RetriesExhausted' });
});

test('a throttle is requeued without using an attempt, however many times, with growing backoff', () => {
  const delays = [0, 1, 2, 3, 12].map((requeues) => {
    // 0: the low end of each delay's jitter range.
    const step = nextStep({ kind: 'requeue' }, { functionErrors: 2, requeues, ageMs: 0 }, lambda, () => 0);
    assert.equal(step.action, 'retry');
    assert.equal(step.action === 'retry' && step.usesAttempt, false);
    return step.action === 'retry' ? step.delayMs : -1;
  });
  assert.deepEqual(delays, [1000, 1500, 3000, 6000, 225_000]);
});

test('backoff is capped and stays finite for huge counts', () => {
  const top = () => 0.999_999;
  assert.equal(requeueBackoffMs(10_000, { initialMs: 100, maxMs: 5000 }, top), 5000);
  assert.equal(
    requeueBackoffMs(0, { initialMs: 100, maxMs: 5000 }, () => 0),
    100,
  );
});

test('requeue delays are spread by the jitter around the exponential value, within the bounds', () => {
  const bounds = { initialMs: 1000, maxMs: 300_000 };
  // The extremes of the random source: a quarter below and above the exponential value (8 s).
  assert.equal(
    requeueBackoffMs(3, bounds, () => 0),
    8000 * (1 - REQUEUE_JITTER),
  );
  assert.equal(
    requeueBackoffMs(3, bounds, () => 0.999_999),
    8000 * (1 + REQUEUE_JITTER),
  );
  // Never under the first delay nor over the maximum, even where the jitter would take it there.
  assert.equal(
    requeueBackoffMs(0, bounds, () => 0),
    1000,
  );
  assert.equal(
    requeueBackoffMs(20, bounds, () => 0.999_999),
    300_000,
  );

  // With a real random source, 1,000 events throttled together come back spread out.
  const delays = Array.from({ length: 1000 }, () => requeueBackoffMs(3, bounds));
  for (const delay of delays) assert.ok(delay >= 6000 && delay <= 10_000, `${delay} ms`);
  assert.ok(new Set(delays).size > 500, 'most delays differ');
  assert.ok(delays.filter((d) => d < 8000).length > 300, 'some come back early');
  assert.ok(delays.filter((d) => d > 8000).length > 300, 'some come back late');
  const atTheCap = Array.from({ length: 1000 }, () => requeueBackoffMs(30, bounds));
  assert.ok(atTheCap.every((d) => d >= 225_000 && d <= 300_000));
  assert.ok(new Set(atTheCap).size > 900, 'spread at the cap too, not piled up on it');
});

test('a retry that would run after the maximum age dead-letters the event now as EventAgeExceeded', () => {
  const policy = { ...lambda, maxEventAgeSeconds: 90 };
  assert.deepEqual(
    nextStep({ kind: 'functionError' }, { functionErrors: 1, requeues: 0, ageMs: 31_000 }, policy),
    {
      action: 'deadLetter',
      condition: 'EventAgeExceeded',
    },
  );
  assert.equal(
    nextStep({ kind: 'functionError' }, { functionErrors: 1, requeues: 0, ageMs: 29_000 }, policy).action,
    'retry',
  );
  assert.deepEqual(
    nextStep({ kind: 'requeue' }, { functionErrors: 0, requeues: 9, ageMs: 89_000 }, policy, () => 0),
    {
      action: 'deadLetter',
      condition: 'EventAgeExceeded',
    },
  );
});

test('a rejected call (unknown function, refused payload) is not retried', () => {
  assert.deepEqual(nextStep({ kind: 'rejected' }, { functionErrors: 0, requeues: 0, ageMs: 0 }, lambda), {
    action: 'deadLetter',
    condition: 'RetriesExhausted',
  });
});

test('success ends the event', () => {
  assert.deepEqual(nextStep({ kind: 'success' }, { functionErrors: 1, requeues: 3, ageMs: 0 }, lambda), {
    action: 'succeed',
  });
});

test('retry delays repeat the last configured one past the end of the list', () => {
  assert.equal(functionErrorRetryDelayMs(1, [100, 200]), 100);
  assert.equal(functionErrorRetryDelayMs(2, [100, 200]), 200);
  assert.equal(functionErrorRetryDelayMs(3, [100, 200]), 200);
  assert.equal(functionErrorRetryDelayMs(1, []), 0);
});

test('event age is compared with maxEventAgeSeconds', () => {
  assert.equal(isEventTooOld(60_000, 60), false);
  assert.equal(isEventTooOld(60_001, 60), true);
});

test('request ids with a colon or only digits cannot be job ids', () => {
  assert.equal(isUsableRequestId('c0ffee00-1111-2222-3333-444455556666'), true);
  assert.equal(isUsableRequestId('a:b'), false);
  assert.equal(isUsableRequestId('12345'), false);
  assert.equal(isUsableRequestId(''), false);
});

test('far from its limits an Event call stores on a recent backlog reading; near them, or on an old or much-used one, it reserves', () => {
  const limits = { maxDepth: 100_000, maxOldestAgeSeconds: 3600 };
  const reading = (changes: Partial<BacklogReading> = {}): BacklogReading => ({
    readAt: 1_000,
    depth: 50,
    oldestWaitingAgeMs: 2_000,
    storedSince: 0,
    ...changes,
  });
  assert.equal(backlogReadingSuffices(reading(), limits, 1_000), true);
  assert.equal(backlogReadingSuffices(reading(), limits, 1_000 + BACKLOG_READING_MS - 1), true);
  assert.equal(backlogReadingSuffices(reading(), limits, 1_000 + BACKLOG_READING_MS), false, 'too old');
  assert.equal(backlogReadingSuffices(reading(), limits, 999), false, 'the clock went back');
  assert.equal(
    backlogReadingSuffices(reading({ storedSince: BACKLOG_READING_STORES - 1 }), limits, 1_000),
    true,
  );
  assert.equal(
    backlogReadingSuffices(reading({ storedSince: BACKLOG_READING_STORES }), limits, 1_000),
    false,
    'used up',
  );
  // Depth: what other gateways may have stored meanwhile must still fit under the limit.
  const edge = limits.maxDepth - BACKLOG_DEPTH_MARGIN;
  assert.equal(backlogReadingSuffices(reading({ depth: edge - 1 }), limits, 1_000), true);
  assert.equal(backlogReadingSuffices(reading({ depth: edge }), limits, 1_000), false);
  assert.equal(backlogReadingSuffices(reading({ depth: edge - 10, storedSince: 10 }), limits, 1_000), false);
  assert.equal(
    backlogReadingSuffices(reading({ depth: 0 }), { maxDepth: 25, maxOldestAgeSeconds: 3600 }, 1_000),
    false,
    'a small limit is always checked in Redis',
  );
  // Age: the oldest waiting event has aged by the time since the reading, no more.
  const oldest = reading({ oldestWaitingAgeMs: 3_600_000 - 50 });
  assert.equal(backlogReadingSuffices(oldest, limits, 1_050), true);
  assert.equal(backlogReadingSuffices(oldest, limits, 1_051), false);
});
