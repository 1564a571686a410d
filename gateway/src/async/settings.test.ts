import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../config.js';
import { parseAsyncSettings } from './settings.js';

test('no variables: every setting keeps its default', () => {
  assert.deepEqual(parseAsyncSettings({}), { workers: {}, limits: {} });
});

test('variables become worker options and backlog limits', () => {
  const settings = parseAsyncSettings({
    HEARTH_ASYNC_CONCURRENCY: '4',
    HEARTH_ASYNC_RETRY_DELAYS_MS: '100, 200',
    HEARTH_ASYNC_REQUEUE_MIN_MS: '50',
    HEARTH_ASYNC_LOCK_MS: '2000',
    HEARTH_ASYNC_MAX_DEPTH: '10',
    HEARTH_ASYNC_DESTINATION_ATTEMPTS: '2',
  });
  assert.deepEqual(settings, {
    workers: {
      concurrency: 4,
      retryDelaysMs: [100, 200],
      requeueBackoff: { initialMs: 50, maxMs: 300_000 },
      lockDurationMs: 2000,
      delivery: { attempts: 2 },
      backlogLimits: { maxDepth: 10 },
    },
    limits: { maxDepth: 10 },
  });
});

test('a bad value is refused naming its variable', () => {
  assert.throws(
    () => parseAsyncSettings({ HEARTH_ASYNC_CONCURRENCY: '0' }),
    (e: ConfigError) => e.field === 'HEARTH_ASYNC_CONCURRENCY',
  );
  assert.throws(
    () => parseAsyncSettings({ HEARTH_ASYNC_RETRY_DELAYS_MS: '100,soon' }),
    (e: ConfigError) => e.field === 'HEARTH_ASYNC_RETRY_DELAYS_MS',
  );
  assert.throws(() => parseAsyncSettings({ HEARTH_ASYNC_LOCK_MS: '10' }), /HEARTH_ASYNC_LOCK_MS/);
});
