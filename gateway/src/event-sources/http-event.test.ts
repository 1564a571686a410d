import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeKeyOf, toHttpApiEvent, type HttpRequestParts } from './http-event.js';

// The request of the example event in AWS's "Working with AWS Lambda proxy integrations for HTTP
// APIs" (payload format 2.0), sent to a route at "/": the event must come out as documented.
const documented: HttpRequestParts = {
  method: 'POST',
  rawPath: '/my/path',
  rawQueryString: 'parameter1=value1&parameter1=value2&parameter2=value',
  rawHeaders: [
    'Header1',
    'value1',
    'Header2',
    'value1',
    'Header2',
    'value2',
    'Cookie',
    'cookie1; cookie2',
    'Host',
    'id.execute-api.us-east-1.amazonaws.com',
    'User-Agent',
    'agent',
    'Content-Type',
    'text/plain',
  ],
  body: Buffer.from('Hello from Lambda'),
  protocol: 'HTTP/1.1',
  sourceIp: '192.0.2.1',
  requestId: 'id',
  receivedAt: new Date(1583348638390),
};
const atRoot = {
  http: { method: 'ANY', pathPrefix: '/', auth: 'none' as const },
  mappingName: 'api-id',
  accountId: '123456789012',
};

test("AWS's documented payload 2.0 example comes out field for field", () => {
  const event = toHttpApiEvent(documented, atRoot);
  assert.deepEqual(event, {
    version: '2.0',
    routeKey: '$default',
    rawPath: '/my/path',
    rawQueryString: 'parameter1=value1&parameter1=value2&parameter2=value',
    cookies: ['cookie1', 'cookie2'],
    headers: {
      header1: 'value1',
      header2: 'value1,value2',
      host: 'id.execute-api.us-east-1.amazonaws.com',
      'user-agent': 'agent',
      'content-type': 'text/plain',
    },
    queryStringParameters: { parameter1: 'value1,value2', parameter2: 'value' },
    requestContext: {
      accountId: '123456789012',
      apiId: 'api-id',
      domainName: 'id.execute-api.us-east-1.amazonaws.com',
      domainPrefix: 'id',
      http: {
        method: 'POST',
        path: '/my/path',
        protocol: 'HTTP/1.1',
        sourceIp: '192.0.2.1',
        userAgent: 'agent',
      },
      requestId: 'id',
      routeKey: '$default',
      stage: '$default',
      time: '04/Mar/2020:19:03:58 +0000',
      timeEpoch: 1583348638390,
    },
    body: 'Hello from Lambda',
    isBase64Encoded: false,
  });
});

test('a route under a prefix has its route key and the rest of the path as {proxy}', () => {
  const http = { method: 'GET', pathPrefix: '/shop', auth: 'gateway' as const };
  assert.equal(routeKeyOf(http), 'GET /shop/{proxy+}');
  assert.equal(routeKeyOf({ method: 'ANY', pathPrefix: '/shop/' }), 'ANY /shop/{proxy+}');
  const event = toHttpApiEvent(
    { ...documented, method: 'GET', rawPath: '/shop/items/a%20b', rawQueryString: '', body: Buffer.alloc(0) },
    { http, mappingName: 'shop', accountId: '000000000000' },
  );
  assert.equal(event.routeKey, 'GET /shop/{proxy+}');
  assert.equal(event.requestContext.routeKey, 'GET /shop/{proxy+}');
  assert.deepEqual(event.pathParameters, { proxy: 'items/a b' });
  assert.equal(event.queryStringParameters, undefined, 'no query: no queryStringParameters');
  assert.equal(event.body, undefined, 'no body: no body field');
  assert.equal(event.isBase64Encoded, false);
  const bare = toHttpApiEvent(
    { ...documented, rawPath: '/shop' },
    { http, mappingName: 'shop', accountId: '0' },
  );
  assert.equal(bare.pathParameters, undefined, 'the prefix itself has no {proxy}');
});

test('bodies that are not text go to the function base64; the gateway keeps its own Authorization', () => {
  const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 255]);
  const binary = toHttpApiEvent(
    {
      ...documented,
      rawHeaders: ['Content-Type', 'image/png', 'Authorization', 'Bearer secret'],
      body: png,
    },
    { ...atRoot, dropHeaders: ['authorization'] },
  );
  assert.equal(binary.isBase64Encoded, true);
  assert.deepEqual(Buffer.from(binary.body!, 'base64'), png);
  assert.equal(binary.headers.authorization, undefined);
  const json = toHttpApiEvent(
    {
      ...documented,
      rawHeaders: ['Content-Type', 'application/vnd.api+json; charset=utf-8'],
      body: Buffer.from('{"a":1}'),
    },
    atRoot,
  );
  assert.equal(json.isBase64Encoded, false);
  assert.equal(json.body, '{"a":1}');
});
