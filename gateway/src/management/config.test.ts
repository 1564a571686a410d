import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../config.js';

const base = ['--redis-url=redis://127.0.0.1:6379', '--auth=false', '--port=9000'];

test('the management API is off unless a backend is configured', () => {
  assert.equal(parseConfig(base, {}, 'g').management, undefined);
});

test('with a functions directory it writes manifests and keeps code beside them', () => {
  assert.deepEqual(parseConfig([...base, '--functions-dir=/fns'], {}, 'g').management, {
    backend: { kind: 'manifests', functionsDir: '/fns' },
    codeStoreDir: '/fns/.hearth/code',
    codeStoreBytes: 75 * 1024 ** 3,
    codeBaseUrl: 'http://127.0.0.1:9000',
  });
});

test('the kubernetes backend needs a code store directory; bad values name the field', () => {
  const env = {
    HEARTH_MANAGEMENT_BACKEND: 'kubernetes',
    HEARTH_NAMESPACE: 'fns',
    HEARTH_CODE_STORE_DIR: '/code',
    HEARTH_CODE_BASE_URL: 'http://hearth-gateway:8080',
  };
  assert.deepEqual(parseConfig(base, env, 'g').management?.backend, { kind: 'kubernetes', namespace: 'fns' });
  assert.throws(
    () => parseConfig(base, { HEARTH_MANAGEMENT_BACKEND: 'kubernetes' }, 'g'),
    (e: unknown) => e instanceof ConfigError && e.field === 'management.codeStoreDir',
  );
  assert.throws(
    () => parseConfig([...base, '--functions-dir=/f', '--code-base-url=http://x/path'], {}, 'g'),
    (e: unknown) => e instanceof ConfigError && e.field === 'management.codeBaseUrl',
  );
  assert.throws(
    () => parseConfig([...base, '--management-backend=s3'], {}, 'g'),
    (e: unknown) => e instanceof ConfigError && e.field === 'management.backend',
  );
});
