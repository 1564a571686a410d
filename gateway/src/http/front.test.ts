import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { createFront } from './front.js';

test('a client that trickles its Invoke call in gets 408 with an error body, and the connection ends', async () => {
  const nodeServer = createHttpServer((_req, res) => res.end('node'));
  const front = createFront({
    nodeServer,
    invoke: {
      serve: async () => ({ status: 200, headers: {}, body: Buffer.from('{}'), json: true }),
    },
    bodyLimit: 1024,
    idleTimeoutMs: 60_000,
    requestTimeouts: { headersMs: 100, requestMs: 300 },
  });
  front.server.listen(0, '127.0.0.1');
  await once(front.server, 'listening');
  const client = connect((front.server.address() as AddressInfo).port, '127.0.0.1');
  try {
    let text = '';
    client.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    const closed = once(client, 'close', { signal: AbortSignal.timeout(3000) });
    client.write(
      'POST /2015-03-31/functions/hello/invocations HTTP/1.1\r\nHost: x\r\ncontent-length: 8\r\n\r\n{"a"',
    );
    await closed;
    const [head, body] = text.split('\r\n\r\n');
    assert.match(head!, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(head!, /\r\nx-amzn-errortype: InvalidRequestContentException\r\n/i);
    assert.match(head!, /\r\nconnection: close$/);
    assert.match(JSON.parse(body!).message, /did not arrive whole within 0\.3 s/);
  } finally {
    client.destroy();
    front.server.close();
  }
});
