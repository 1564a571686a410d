import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveSettings } from './settings.js';
import { CliError } from './errors.js';

test('flags beat the environment, which beats the config file; empty variables count as unset', () => {
  const file = { url: 'http://file:1', token: 'file-token', output: 'json' as const };
  assert.deepEqual(resolveSettings({}, {}, file), {
    url: 'http://file:1',
    token: 'file-token',
    output: 'json',
  });
  assert.deepEqual(resolveSettings({}, { HEARTH_URL: 'http://env:2/', HEARTH_TOKEN: 'env-token' }, file), {
    url: 'http://env:2',
    token: 'env-token',
    output: 'json',
  });
  assert.deepEqual(
    resolveSettings(
      { url: 'http://flag:3', token: 'flag-token', output: 'text' },
      { HEARTH_URL: 'http://env:2' },
      file,
    ),
    { url: 'http://flag:3', token: 'flag-token', output: 'text' },
  );
  assert.deepEqual(resolveSettings({}, { HEARTH_URL: '', HEARTH_TOKEN: '' }, {}), {
    url: 'http://127.0.0.1:8080',
    output: 'text',
  });
});

test('a URL that is not http(s) or an unknown output format is a usage error', () => {
  assert.throws(
    () => resolveSettings({ url: 'localhost:8080' }, {}, {}),
    (error: unknown) => error instanceof CliError && error.exitCode === 2,
  );
  assert.throws(
    () => resolveSettings({ output: 'yaml' }, {}, {}),
    (error: unknown) => error instanceof CliError && /text or json/.test(error.message),
  );
});
