import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayError } from '../core/errors.js';
import { answerFromError, answerFromResult } from './http-response.js';

const answer = (value: unknown) => answerFromResult(Buffer.from(JSON.stringify(value)));

test('a result without statusCode is a 200 application/json: a string as it is, other JSON as JSON', () => {
  // The two examples of AWS's "response format" section for payload 2.0.
  const text = answer('Hello from Lambda!');
  assert.equal(text.statusCode, 200);
  assert.deepEqual(text.headers, [['content-type', 'application/json']]);
  assert.equal(text.body.toString(), 'Hello from Lambda!');
  const object = answer({ message: 'Hello from Lambda!' });
  assert.equal(object.statusCode, 200);
  assert.deepEqual(JSON.parse(object.body.toString()), { message: 'Hello from Lambda!' });
});

test('a result with statusCode describes the answer: headers, multiValueHeaders, cookies, base64 body', () => {
  const described = answer({
    statusCode: 201,
    headers: { 'Content-Type': 'text/html', 'X-Count': 3, 'Transfer-Encoding': 'chunked' },
    multiValueHeaders: { Vary: ['Accept', 'Origin'], 'content-type': ['ignored/given-in-headers'] },
    cookies: ['a=1; Path=/', 'b=2'],
    body: Buffer.from([1, 2, 3]).toString('base64'),
    isBase64Encoded: true,
  });
  assert.equal(described.statusCode, 201);
  assert.deepEqual(described.headers, [
    ['content-type', 'text/html'],
    ['x-count', '3'],
    ['vary', 'Accept'],
    ['vary', 'Origin'],
    ['set-cookie', 'a=1; Path=/'],
    ['set-cookie', 'b=2'],
  ]);
  assert.deepEqual([...described.body], [1, 2, 3]);
  assert.equal(answer({ statusCode: 204 }).body.length, 0);
});

test('an unusable statusCode is a 500 Internal Server Error, as API Gateway answers a malformed response', () => {
  const bad = answer({ statusCode: 'teapot' });
  assert.equal(bad.statusCode, 500);
  assert.deepEqual(JSON.parse(bad.body.toString()), { message: 'Internal Server Error' });
});

test('gateway errors become API Gateway answers: 429 throttle, 401/403 auth, 413 size, 503 unavailable', () => {
  const status = (error: GatewayError) => answerFromError(error).statusCode;
  const throttled = answerFromError(new GatewayError('TooManyRequestsException', 'Rate Exceeded.', {}, 1));
  assert.equal(throttled.statusCode, 429);
  assert.deepEqual(JSON.parse(throttled.body.toString()), { message: 'Too Many Requests' });
  assert.ok(throttled.headers.some(([name, value]) => name === 'retry-after' && value === '1'));
  assert.equal(status(new GatewayError('AccessDeniedException', 'no token')), 401);
  assert.equal(status(new GatewayError('UnrecognizedClientException', 'bad key')), 403);
  assert.equal(status(new GatewayError('InvalidSignatureException', 'bad sig')), 403);
  assert.equal(status(new GatewayError('RequestTooLargeException', 'big')), 413);
  assert.equal(status(new GatewayError('ResourceNotReadyException', 'cold')), 503);
  assert.equal(status(new GatewayError('ServiceException', 'instance died')), 500);
});
