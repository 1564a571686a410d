import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from './config.js';

const base = { HEARTH_REDIS_URL: 'redis://127.0.0.1:6379', HEARTH_API_KEYS: 'k1' };

const fieldOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error instanceof ConfigError ? error.field : 'other';
  }
  return 'none';
};

test('defaults: Lambda limits, auth on, role all', () => {
  const config = parseConfig([], base, 'gw-1');
  assert.equal(config.accountConcurrency, 1000);
  assert.equal(config.syncPayloadBytes, 6_291_456);
  assert.equal(config.asyncPayloadBytes, 1_048_576);
  assert.equal(config.auth.enabled, true);
  assert.deepEqual(config.auth.apiKeys, ['k1']);
  assert.equal(config.role, 'all');
  assert.equal(config.gatewayId, 'gw-1');
});

test('flags beat the environment; access keys are ID:SECRET pairs', () => {
  const config = parseConfig(
    ['--port=9000', '--role=http', '--auth=off'],
    { ...base, HEARTH_GATEWAY_PORT: '8000', HEARTH_ACCESS_KEYS: 'AKID:se:cret, AK2:x' },
    'gw',
  );
  assert.equal(config.port, 9000);
  assert.equal(config.role, 'http');
  assert.equal(config.auth.enabled, false);
  assert.deepEqual(config.auth.accessKeys, [
    { accessKeyId: 'AKID', secretAccessKey: 'se:cret' },
    { accessKeyId: 'AK2', secretAccessKey: 'x' },
  ]);
});

test('a session token belongs to one of the access keys, which then needs it', () => {
  const config = parseConfig(
    [],
    { ...base, HEARTH_ACCESS_KEYS: 'AKID:secret,ASIA:temp', HEARTH_SESSION_TOKENS: 'ASIA:to/ken+=' },
    'gw',
  );
  assert.deepEqual(config.auth.accessKeys, [
    { accessKeyId: 'AKID', secretAccessKey: 'secret' },
    { accessKeyId: 'ASIA', secretAccessKey: 'temp', sessionToken: 'to/ken+=' },
  ]);
  assert.equal(
    fieldOf(() =>
      parseConfig(['--session-tokens=NOPE:token'], { ...base, HEARTH_ACCESS_KEYS: 'AKID:s' }, 'gw'),
    ),
    'auth.sessionTokens[0]',
    'a token for a key that is not configured',
  );
});

test('bad settings fail at start, naming the field', () => {
  assert.equal(
    fieldOf(() => parseConfig([], {}, 'gw')),
    'redisUrl',
  );
  assert.equal(
    fieldOf(() => parseConfig(['--port=http'], base, 'gw')),
    'port',
  );
  assert.equal(
    fieldOf(() => parseConfig(['--role=both'], base, 'gw')),
    'role',
  );
  assert.equal(
    fieldOf(() => parseConfig(['--account-concurrency=0'], base, 'gw')),
    'accountConcurrency',
  );
  assert.equal(
    fieldOf(() => parseConfig(['--colour=blue'], base, 'gw')),
    '--colour',
  );
  assert.equal(
    fieldOf(() => parseConfig([], { ...base, HEARTH_ACCESS_KEYS: 'nosecret' }, 'gw')),
    'auth.accessKeys[0]',
  );
  assert.equal(
    fieldOf(() => parseConfig([], { HEARTH_REDIS_URL: base.HEARTH_REDIS_URL }, 'gw')),
    'auth',
    'auth on without any key locks everyone out',
  );
  assert.equal(
    parseConfig(['--auth=false'], { HEARTH_REDIS_URL: base.HEARTH_REDIS_URL }, 'gw').auth.enabled,
    false,
  );
});
