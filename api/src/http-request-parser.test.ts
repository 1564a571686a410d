import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HttpRequestParser, type ParsedRequest } from './http-request-parser.js';

function parserFor(bodyLimit = 1024) {
  const requests: ParsedRequest[] = [];
  const events: string[] = [];
  const parser = new HttpRequestParser({
    bodyLimit,
    onRequest: (request) => {
      requests.push(request);
      events.push(`request ${request.method} ${request.target}`);
    },
    onContinue: () => events.push('continue'),
    onMalformed: (status, message) => events.push(`malformed ${status} ${message}`),
  });
  return { parser, requests, events };
}

const POST_AND_NEXT =
  'POST /2018-06-01/runtime/invocation/abc/response HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{"ok":true}' +
  'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n';

test('pipelined requests in one packet come out in order, each with its body', () => {
  const { parser, requests } = parserFor();
  parser.push(Buffer.from(POST_AND_NEXT));
  assert.equal(requests.length, 2);
  assert.equal(requests[0]!.method, 'POST');
  assert.equal(requests[0]!.body!.toString(), '{"ok":true}');
  assert.equal(requests[0]!.headers['content-length'], '11');
  assert.equal(requests[1]!.target, '/2018-06-01/runtime/invocation/next');
  assert.equal(requests[1]!.body!.length, 0);
  assert.equal(requests[1]!.close, false);
});

test('a request split at every byte is parsed the same', () => {
  const { parser, requests } = parserFor();
  const bytes = Buffer.from(POST_AND_NEXT);
  for (let i = 0; i < bytes.length; i++) parser.push(bytes.subarray(i, i + 1));
  assert.deepEqual(
    requests.map((r) => [r.method, r.body!.toString()]),
    [
      ['POST', '{"ok":true}'],
      ['GET', ''],
    ],
  );
});

test('a chunked body with extensions and a trailer is joined; Expect: 100-continue is reported first', () => {
  const { parser, requests, events } = parserFor();
  parser.push(
    Buffer.from(
      'POST /r HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n' +
        '4;name=value\r\n{"a"\r\nA\r\n:"bcdefgh"\r\n1\r\n}\r\n0\r\nX-Trailer: 1\r\n\r\n',
    ),
  );
  assert.deepEqual(events, ['continue', 'request POST /r']);
  assert.equal(requests[0]!.body!.toString(), '{"a":"bcdefgh"}');
});

test('a body over the limit is read to its end and dropped; the next request still parses', () => {
  const { parser, requests } = parserFor(10);
  parser.push(Buffer.from('POST /big HTTP/1.1\r\nContent-Length: 20\r\n\r\n0123456789'));
  parser.push(Buffer.from('0123456789GET /after HTTP/1.1\r\n\r\n'));
  assert.equal(requests[0]!.body, undefined);
  assert.equal(requests[1]!.target, '/after');
});

test('HTTP/1.0 and Connection: close ask for the connection to end after the answer', () => {
  const { parser, requests } = parserFor();
  parser.push(Buffer.from('GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.1\r\nConnection: close\r\n\r\n'));
  assert.deepEqual(
    requests.map((r) => r.close),
    [true, true],
  );
});

test('what is not HTTP/1.x is refused once, naming what was wrong, and nothing more is parsed', () => {
  for (const [input, expected] of [
    ['HELLO\r\n\r\n', /^malformed 400 Bad request line: HELLO$/],
    ['GET / HTTP/1.1\r\nno colon\r\n\r\n', /^malformed 400 Bad header line: no colon$/],
    ['POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n', /^malformed 400 Bad content-length: -1$/],
    ['POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n', /^malformed 400 Unsupported transfer-encoding/],
    ['POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /^malformed 400 Bad chunk size: zz$/],
  ] as const) {
    const { parser, events } = parserFor();
    parser.push(Buffer.from(input));
    parser.push(Buffer.from('GET /ignored HTTP/1.1\r\n\r\n'));
    assert.equal(events.length, 1, input);
    assert.match(events[0]!, expected);
  }
  const { parser, events } = parserFor();
  parser.push(Buffer.from(`GET / HTTP/1.1\r\nX: ${'y'.repeat(70 * 1024)}`));
  assert.deepEqual(events, ['malformed 431 Request head too large']);
});

test('header names are case-insensitive, the first of a repeated header wins, and no name is special', () => {
  const { parser, requests } = parserFor();
  parser.push(
    Buffer.from(
      'GET /h HTTP/1.1\r\nX-Type:  first \r\nx-type: second\r\nConstructor: c\r\n__proto__: p\r\n\r\n',
    ),
  );
  const { headers } = requests[0]!;
  assert.equal(headers['x-type'], 'first');
  assert.equal(headers.constructor, 'c');
  assert.equal(headers.__proto__, 'p');
});

test('a request the parser does not serve stops it: the bytes from that request on are passed on', () => {
  const requests: string[] = [];
  const passedOn: Buffer[] = [];
  const parser = new HttpRequestParser({
    bodyLimit: 1024,
    onRequest: (request) => requests.push(`${request.method} ${request.target}`),
    onContinue: () => undefined,
    onMalformed: () => assert.fail('not malformed'),
    passOn: { serves: (method) => method === 'POST', passOn: (bytes) => passedOn.push(bytes) },
  });
  const other = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /after HTTP/1.1\r\nContent-Length: 0\r\n\r\n';
  parser.push(Buffer.from(POST_AND_NEXT.slice(0, 40)));
  parser.push(Buffer.from(POST_AND_NEXT.slice(40).replace(/GET[^]*$/, '') + '\r\n' + other.slice(0, 10)));
  assert.equal(passedOn.length, 0, 'the head of the request after is not complete yet');
  parser.push(Buffer.from(other.slice(10)));
  assert.deepEqual(requests, ['POST /2018-06-01/runtime/invocation/abc/response']);
  // The blank line between the requests is not part of the next one; the one after it is.
  assert.deepEqual(passedOn.map(String), [other]);
  parser.push(Buffer.from('POST /late HTTP/1.1\r\n\r\n'));
  assert.equal(requests.length, 1, 'nothing is parsed after the connection is passed on');
});

test('a held parser keeps what arrives and calls it back in order on release', () => {
  const requests: string[] = [];
  const parser: HttpRequestParser = new HttpRequestParser({
    bodyLimit: 1024,
    onRequest: (request) => {
      requests.push(request.target);
      // Held from inside a callback: the requests after this one wait.
      if (requests.length === 1) parser.hold();
    },
    onContinue: () => undefined,
    onMalformed: () => assert.fail('malformed'),
  });
  const get = (target: string) => `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`;
  parser.push(Buffer.from(get('/a') + get('/b')));
  assert.deepEqual(requests, ['/a']);
  assert.equal(parser.receiving(), 'head', 'the held request counts as arriving');
  parser.push(Buffer.from(get('/c')));
  assert.deepEqual(requests, ['/a']);
  parser.release();
  assert.deepEqual(requests, ['/a', '/b', '/c']);
  assert.equal(parser.receiving(), 'nothing');
});

test('a parser stopped by malformed input is receiving nothing, even mid-body', () => {
  const { parser, events } = parserFor();
  parser.push(Buffer.from('POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'));
  assert.deepEqual(events, ['malformed 400 Bad chunk size: zz']);
  assert.equal(parser.receiving(), 'nothing');
});
