import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayError } from '../core/errors.js';
import {
  eventPayload,
  functionNotFound,
  parseFunctionReference,
  parseInvocationType,
  parseLogType,
  validateClientContext,
} from './invoke-request.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    return error instanceof GatewayError ? error.code : 'other';
  }
  return 'none';
};

test('function references: names, name:qualifier, full and partial ARNs, ?Qualifier=', () => {
  assert.deepEqual(parseFunctionReference('my-fn', undefined), { name: 'my-fn' });
  assert.deepEqual(parseFunctionReference('my-fn:$LATEST', undefined), {
    name: 'my-fn',
    qualifier: '$LATEST',
  });
  assert.deepEqual(
    parseFunctionReference('arn:aws:lambda:eu-west-1:123456789012:function:my_fn', undefined),
    { name: 'my_fn' },
  );
  assert.deepEqual(
    parseFunctionReference('arn:aws:lambda:us-east-1:123456789012:function:f:prod', undefined),
    { name: 'f', qualifier: 'prod' },
  );
  assert.deepEqual(parseFunctionReference('123456789012:function:f', undefined), { name: 'f' });
  assert.deepEqual(parseFunctionReference('function:f:7', undefined), { name: 'f', qualifier: '7' });
  // A Function of another Kubernetes namespace.
  assert.deepEqual(parseFunctionReference('hello.team-b:$LATEST', undefined), {
    name: 'hello.team-b',
    qualifier: '$LATEST',
  });
  assert.deepEqual(parseFunctionReference('f', '$LATEST'), { name: 'f', qualifier: '$LATEST' });
  assert.deepEqual(parseFunctionReference('f:3', '3'), { name: 'f', qualifier: '3' });
});

test('malformed references are 400s, a qualifier in both places must agree', () => {
  assert.equal(
    code(() => parseFunctionReference('f:1', '2')),
    'InvalidParameterValueException',
  );
  assert.equal(
    code(() => parseFunctionReference('a'.repeat(65), undefined)),
    'InvalidParameterValueException',
  );
  assert.equal(
    code(() => parseFunctionReference('bad name', undefined)),
    'InvalidParameterValueException',
  );
  assert.equal(
    code(() => parseFunctionReference('a:b:c', undefined)),
    'InvalidParameterValueException',
  );
  assert.equal(
    code(() => parseFunctionReference('', undefined)),
    'InvalidParameterValueException',
  );
});

test('not found names the full ARN with its qualifier', () => {
  const error = functionNotFound({ name: 'f', qualifier: 'prod' }, 'us-east-1', '000000000000');
  assert.equal(error.status, 404);
  assert.equal(error.message, 'Function not found: arn:aws:lambda:us-east-1:000000000000:function:f:prod');
});

test('invocation and log types', () => {
  assert.equal(parseInvocationType(undefined), 'RequestResponse');
  assert.equal(parseInvocationType('Event'), 'Event');
  assert.equal(parseInvocationType('DryRun'), 'DryRun');
  assert.equal(
    code(() => parseInvocationType('event')),
    'InvalidParameterValueException',
  );
  assert.equal(parseLogType('Tail'), true);
  assert.equal(parseLogType('None'), false);
  assert.equal(parseLogType(undefined), false);
  assert.equal(
    code(() => parseLogType('All')),
    'InvalidParameterValueException',
  );
});

test('client context: base64 JSON object of at most 3583 bytes', () => {
  const context = Buffer.from(JSON.stringify({ custom: { a: 1 } })).toString('base64');
  assert.equal(validateClientContext(context), context);
  assert.equal(validateClientContext(undefined), undefined);
  assert.equal(
    code(() => validateClientContext('not base64!')),
    'InvalidParameterValueException',
  );
  assert.equal(
    code(() => validateClientContext(Buffer.from('[1]').toString('base64'))),
    'InvalidParameterValueException',
  );
  const big = Buffer.from(JSON.stringify({ custom: { a: 'x'.repeat(2700) } })).toString('base64');
  assert.ok(big.length > 3583);
  assert.equal(
    code(() => validateClientContext(big)),
    'InvalidParameterValueException',
  );
});

test('event payload: JSON passes through, empty becomes {}, anything else is a 400', () => {
  assert.equal(eventPayload(Buffer.from('{"a":1}')).toString(), '{"a":1}');
  assert.equal(eventPayload(Buffer.from('"text"')).toString(), '"text"');
  assert.equal(eventPayload(Buffer.alloc(0)).toString(), '{}');
  assert.equal(
    code(() => eventPayload(Buffer.from('{oops'))),
    'InvalidRequestContentException',
  );
});
