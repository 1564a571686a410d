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
    codeStore: { kind: 'directory', dir: '/fns/.hearth/code' },
    codeStoreBytes: 75 * 1024 ** 3,
    codeBaseUrl: 'http://127.0.0.1:9000',
  });
});

test('the kubernetes backend needs a shared code store; bad values name the field', () => {
  const env = {
    HEARTH_MANAGEMENT_BACKEND: 'kubernetes',
    HEARTH_NAMESPACE: 'fns',
    HEARTH_CODE_STORE_DIR: '/code',
    HEARTH_CODE_BASE_URL: 'http://hearth-gateway:8080',
  };
  assert.deepEqual(parseConfig(base, env, 'g').management?.backend, { kind: 'kubernetes', namespace: 'fns' });
  assert.throws(
    () => parseConfig(base, { HEARTH_MANAGEMENT_BACKEND: 'kubernetes' }, 'g'),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.field === 'management.codeStore' &&
      /HEARTH_CODE_STORE_DIR.*HEARTH_CODE_STORE_S3_BUCKET/.test(e.message),
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

test('a bucket is the code store when one is named; an endpoint means path-style addressing', () => {
  const env = {
    HEARTH_MANAGEMENT_BACKEND: 'kubernetes',
    HEARTH_CODE_STORE_S3_BUCKET: 'hearth-code',
    HEARTH_CODE_STORE_S3_ENDPOINT: 'http://minio:9000/',
    HEARTH_CODE_STORE_S3_PREFIX: 'prod/code',
  };
  assert.deepEqual(parseConfig(base, env, 'g').management?.codeStore, {
    kind: 's3',
    bucket: 'hearth-code',
    endpoint: 'http://minio:9000',
    region: 'us-east-1',
    prefix: 'prod/code/',
    forcePathStyle: true,
  });
  assert.deepEqual(
    parseConfig(
      [...base, '--functions-dir=/fns'],
      { HEARTH_CODE_STORE_S3_BUCKET: 'b.example', HEARTH_CODE_STORE_S3_REGION: 'eu-west-1' },
      'g',
    ).management?.codeStore,
    { kind: 's3', bucket: 'b.example', region: 'eu-west-1', prefix: '', forcePathStyle: false },
  );
});

test('a bad bucket setting fails at start, naming its variable', () => {
  const fails = (env: Record<string, string>, field: string, variable: RegExp) =>
    assert.throws(
      () => parseConfig([...base, '--functions-dir=/fns'], env, 'g'),
      (e: unknown) => e instanceof ConfigError && e.field === field && variable.test(e.message),
    );
  fails(
    { HEARTH_CODE_STORE_S3_ENDPOINT: 'http://minio:9000' },
    'management.codeStore.s3.bucket',
    /HEARTH_CODE_STORE_S3_BUCKET.*/,
  );
  fails(
    { HEARTH_CODE_STORE_S3_BUCKET: 'Bad_Bucket' },
    'management.codeStore.s3.bucket',
    /HEARTH_CODE_STORE_S3_BUCKET/,
  );
  fails(
    { HEARTH_CODE_STORE_S3_BUCKET: 'b', HEARTH_CODE_STORE_DIR: '/code' },
    'management.codeStore',
    /HEARTH_CODE_STORE_DIR.*HEARTH_CODE_STORE_S3_BUCKET/,
  );
  fails(
    { HEARTH_CODE_STORE_S3_BUCKET: 'bucket', HEARTH_CODE_STORE_S3_ENDPOINT: 'minio:9000' },
    'management.codeStore.s3.endpoint',
    /HEARTH_CODE_STORE_S3_ENDPOINT/,
  );
  fails(
    { HEARTH_CODE_STORE_S3_BUCKET: 'bucket', HEARTH_CODE_STORE_S3_PREFIX: '/code' },
    'management.codeStore.s3.prefix',
    /HEARTH_CODE_STORE_S3_PREFIX/,
  );
  fails(
    { HEARTH_CODE_STORE_S3_BUCKET: 'bucket', HEARTH_CODE_STORE_S3_FORCE_PATH_STYLE: 'yes' },
    'management.codeStore.s3.forcePathStyle',
    /HEARTH_CODE_STORE_S3_FORCE_PATH_STYLE/,
  );
});
