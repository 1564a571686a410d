import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFunctionSpec, type FunctionRoute } from '@hearth/api';
import { GatewayError } from '../core/errors.js';
import { checkInvocable, errorTypeLabel } from './local-invoker.js';

const { spec } = validateFunctionSpec({ runtime: 'nodejs20.x', code: { inline: { files: {} } } });
const route = (state: FunctionRoute['state']): FunctionRoute => ({
  name: 'f',
  revision: 'r',
  spec: spec!,
  state,
  lastModified: '',
});

const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return 'ok';
  } catch (error) {
    return error instanceof GatewayError ? `${error.status} ${error.code}` : 'other';
  }
};

test('invocable: Active functions at $LATEST; others are 404 or 409', () => {
  assert.equal(
    codeOf(() => checkInvocable(route('Active'), { functionName: 'f' }, 'us-east-1', '1')),
    'ok',
  );
  assert.equal(
    codeOf(() =>
      checkInvocable(route('Active'), { functionName: 'f', qualifier: '$LATEST' }, 'us-east-1', '1'),
    ),
    'ok',
  );
  assert.equal(
    codeOf(() => checkInvocable(route('Active'), { functionName: 'f', qualifier: '3' }, 'us-east-1', '1')),
    '404 ResourceNotFoundException',
  );
  assert.equal(
    codeOf(() => checkInvocable(undefined, { functionName: 'f' }, 'us-east-1', '1')),
    '404 ResourceNotFoundException',
  );
  assert.equal(
    codeOf(() => checkInvocable(route('Pending'), { functionName: 'f' }, 'us-east-1', '1')),
    '409 ResourceConflictException',
  );
});

test('error type labels stay bounded: platform types as they are, user error names as one value', () => {
  assert.equal(errorTypeLabel('Sandbox.Timedout'), 'Sandbox.Timedout');
  assert.equal(errorTypeLabel('Runtime.ExitError'), 'Runtime.ExitError');
  assert.equal(errorTypeLabel('MyCustomError'), 'Function.Unhandled');
  assert.equal(errorTypeLabel(undefined), 'Function.Unhandled');
});
