import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import { GatewayError } from '../core/errors.js';
import { parseAmzDate, verifySigV4, type SignedRequest } from './sigv4.js';

const keys = new Map([['AKIDTEST', { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret-key' }]]);
const temporaryKeys = new Map([
  ['AKIDTEST', { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret-key', sessionToken: 'the-session-token' }],
]);
const when = new Date('2026-01-02T03:04:05Z');

/** Signs the way the AWS SDK does (its own signer and hash), so verification is checked against a real peer. */
async function signedRequest(
  secret: string,
  body: string,
  path = '/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Af/invocations',
  sessionToken?: string,
): Promise<SignedRequest> {
  const signer = new SignatureV4({
    service: 'lambda',
    region: 'eu-west-1',
    credentials: {
      accessKeyId: 'AKIDTEST',
      secretAccessKey: secret,
      ...(sessionToken === undefined ? {} : { sessionToken }),
    },
    sha256: Sha256,
  });
  const signed = await signer.sign(
    {
      method: 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 9000,
      path,
      query: { Qualifier: '$LATEST' },
      headers: {
        host: '127.0.0.1:9000',
        'content-type': 'application/octet-stream',
        'x-amz-invocation-type': 'RequestResponse',
      },
      body,
    },
    { signingDate: when },
  );
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(signed.headers)) headers[k.toLowerCase()] = String(v);
  return { method: 'POST', rawPath: path, rawQuery: 'Qualifier=%24LATEST', headers, body: Buffer.from(body) };
}

const failure = async (promise: Promise<unknown>) => {
  try {
    await promise;
    return 'accepted';
  } catch (error) {
    return error instanceof GatewayError ? error.code : String(error);
  }
};

test('a request signed with the right secret verifies, percent-encoded path and query included', async () => {
  const request = await signedRequest('secret-key', '{"a":1}');
  assert.equal(await verifySigV4(request, keys, when), 'AKIDTEST');
});

test('a wrong secret, a changed body, path or signed header fails with InvalidSignatureException', async () => {
  assert.equal(
    await failure(verifySigV4(await signedRequest('other', '{}'), keys, when)),
    'InvalidSignatureException',
  );
  const changedBody = await signedRequest('secret-key', '{"a":1}');
  changedBody.body = Buffer.from('{"a":2}');
  assert.equal(await failure(verifySigV4(changedBody, keys, when)), 'InvalidSignatureException');
  const changedPath = await signedRequest('secret-key', '{}');
  changedPath.rawPath = changedPath.rawPath.replace('function%3Af', 'function%3Ag');
  assert.equal(await failure(verifySigV4(changedPath, keys, when)), 'InvalidSignatureException');
  const changedHeader = await signedRequest('secret-key', '{}');
  changedHeader.headers['x-amz-invocation-type'] = 'Event';
  assert.equal(await failure(verifySigV4(changedHeader, keys, when)), 'InvalidSignatureException');
});

test('an unknown key is UnrecognizedClientException, an old signature is refused', async () => {
  assert.equal(
    await failure(verifySigV4(await signedRequest('secret-key', '{}'), new Map(), when)),
    'UnrecognizedClientException',
  );
  const later = new Date(when.getTime() + 16 * 60 * 1000);
  assert.equal(
    await failure(verifySigV4(await signedRequest('secret-key', '{}'), keys, later)),
    'InvalidSignatureException',
  );
});

const PATH = '/2015-03-31/functions/f/invocations';

test('temporary credentials verify with their own session token, signed as the SDK signs it', async () => {
  const request = await signedRequest('secret-key', '{}', PATH, 'the-session-token');
  assert.equal(request.headers['x-amz-security-token'], 'the-session-token');
  assert.equal(await verifySigV4(request, temporaryKeys, when), 'AKIDTEST');
});

test('a missing, wrong or unexpected session token is UnrecognizedClientException', async () => {
  assert.equal(
    await failure(verifySigV4(await signedRequest('secret-key', '{}', PATH), temporaryKeys, when)),
    'UnrecognizedClientException',
    'no token for a key that has one',
  );
  assert.equal(
    await failure(
      verifySigV4(await signedRequest('secret-key', '{}', PATH, 'the-session-tokeX'), temporaryKeys, when),
    ),
    'UnrecognizedClientException',
    'another token of the same length',
  );
  assert.equal(
    await failure(verifySigV4(await signedRequest('secret-key', '{}', PATH, 'short'), temporaryKeys, when)),
    'UnrecognizedClientException',
    'a token of another length',
  );
  assert.equal(
    await failure(
      verifySigV4(await signedRequest('secret-key', '{}', PATH, 'the-session-token'), keys, when),
    ),
    'UnrecognizedClientException',
    'a token for a key that has none',
  );
});

test('a session token must be signed: one added after signing is refused', async () => {
  const request = await signedRequest('secret-key', '{}', PATH);
  request.headers['x-amz-security-token'] = 'the-session-token';
  assert.equal(await failure(verifySigV4(request, temporaryKeys, when)), 'InvalidSignatureException');
});

test('amz dates', () => {
  assert.equal(parseAmzDate('20260102T030405Z')?.toISOString(), '2026-01-02T03:04:05.000Z');
  assert.equal(parseAmzDate('2026-01-02'), undefined);
});
