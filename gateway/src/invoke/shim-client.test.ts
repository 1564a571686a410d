import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { ShimCallError, ShimClient } from './shim-client.js';

/** A raw TCP server answering each request with the given bytes, written in pieces. */
async function rawServer(
  answer: (request: string) => Buffer[] | 'close',
): Promise<{ url: string; server: Server }> {
  const server = createServer((socket: Socket) => {
    let pending = '';
    socket.on('data', (data) => {
      pending += data.toString('latin1');
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/content-length: (\d+)/i.exec(pending)?.[1] ?? 0);
      if (pending.length < end + 4 + length) return;
      const request = pending;
      pending = '';
      const pieces = answer(request);
      if (pieces === 'close') return void socket.destroy();
      let i = 0;
      const next = () => {
        if (i < pieces.length) socket.write(pieces[i++]!, () => setTimeout(next, 2));
      };
      next();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as { port: number };
  return { url: `http://127.0.0.1:${address.port}`, server };
}

const call = (payload = '{}') => ({
  requestId: 'r-1',
  payload: Buffer.from(payload),
  deadlineMs: Date.now() + 5000,
  invokedFunctionArn: 'arn:aws:lambda:us-east-1:000000000000:function:f',
});

test('content-length answers split anywhere, reused over one kept-alive connection', async () => {
  let requests = 0;
  let seen = '';
  const { url, server } = await rawServer((request) => {
    requests++;
    seen = request;
    const wire = Buffer.from(
      'HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Hearth-Duration-Ms: 1.5\r\nx-hearth-function-error: Unhandled\r\nx-hearth-error-type: Boom\r\n\r\n{"ok":true}',
    );
    return [
      wire.subarray(0, 5),
      wire.subarray(5, 40),
      wire.subarray(40, wire.length - 3),
      wire.subarray(wire.length - 3),
    ];
  });
  const client = new ShimClient();
  try {
    for (let i = 0; i < 3; i++) {
      const answer = await client.invoke(url, call('{"n":1}'));
      assert.equal(answer.payload.toString(), '{"ok":true}');
      assert.equal(answer.durationMs, 1.5);
      assert.equal(answer.functionError, 'Unhandled');
      assert.equal(answer.errorType, 'Boom');
    }
    assert.equal(requests, 3);
    assert.match(seen, /^POST \/invoke HTTP\/1\.1\r\n/);
    assert.match(seen, /x-hearth-request-id: r-1\r\n/);
    assert.ok(seen.endsWith('\r\n\r\n{"n":1}'));
  } finally {
    client.close();
    server.close();
  }
});

test('chunked answers (with a trailer) and answers ended by the connection closing', async () => {
  const chunked = Buffer.from(
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"ok\r\n7\r\n":true}\r\n0\r\nX-Trailer: 1\r\n\r\n',
  );
  const { url, server } = await rawServer(() => [
    chunked.subarray(0, 50),
    chunked.subarray(50, 58),
    chunked.subarray(58),
  ]);
  const client = new ShimClient();
  try {
    assert.equal((await client.invoke(url, call())).payload.toString(), '{"ok":true}');
    assert.equal((await client.invoke(url, call())).payload.toString(), '{"ok":true}');
  } finally {
    client.close();
    server.close();
  }
  const closing = createServer((socket) => {
    socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"bye":1}'));
  });
  await new Promise<void>((resolve) => closing.listen(0, '127.0.0.1', resolve));
  const closingClient = new ShimClient();
  try {
    const { port } = closing.address() as { port: number };
    assert.equal(
      (await closingClient.invoke(`http://127.0.0.1:${port}`, call())).payload.toString(),
      '{"bye":1}',
    );
  } finally {
    closingClient.close();
    closing.close();
  }
});

test('a 503 is a refusal, a refused connection unreachable, a connection dropped mid-call a failure', async () => {
  const refusing = await rawServer(() => [
    Buffer.from(
      'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nx-hearth-error-type: ShimUnavailable\r\n\r\n{}',
    ),
  ]);
  const dropping = await rawServer(() => 'close');
  const client = new ShimClient();
  const kind = (error: unknown) => (error instanceof ShimCallError ? error.kind : 'other');
  try {
    await assert.rejects(client.invoke(refusing.url, call()), (e) => kind(e) === 'refused');
    await assert.rejects(client.invoke(dropping.url, call()), (e) => kind(e) === 'failed');
    const port = (dropping.server.address() as { port: number }).port;
    await new Promise((resolve) => dropping.server.close(resolve));
    await assert.rejects(client.invoke(`http://127.0.0.1:${port}`, call()), (e) => kind(e) === 'unreachable');
  } finally {
    client.close();
    refusing.server.close();
  }
});

test('an instance that never answers fails the call soon after its deadline; an idle connection is closed before the shim would', async () => {
  const silent = await rawServer(() => []);
  const answering = await rawServer(() => [Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}')]);
  const closedAfter = new Promise<number>((resolve) => {
    answering.server.on('connection', (socket: Socket) => {
      let answeredAt = 0;
      socket.on('data', () => setImmediate(() => (answeredAt = Date.now())));
      socket.on('close', () => resolve(Date.now() - answeredAt));
    });
  });
  const client = new ShimClient();
  try {
    // A deadline 4.8 s gone leaves 0.2 s of the 5 s grace the gateway gives the shim's own timeout answer.
    const started = Date.now();
    await assert.rejects(
      client.invoke(silent.url, { ...call(), deadlineMs: started - 4800 }),
      (e) => e instanceof ShimCallError && e.kind === 'failed' && /no answer/.test(e.message),
    );
    const waited = Date.now() - started;
    assert.ok(waited >= 190 && waited < 1500, `gave up after ${waited} ms`);

    await client.invoke(answering.url, call());
    const idleMs = await closedAfter;
    // Before a keep-alive timeout of Node's default 5 s: the gateway closes first, so a call is
    // never written to a connection the instance is closing.
    assert.ok(idleMs >= 1900 && idleMs < 4000, `idle connection closed after ${idleMs} ms`);
  } finally {
    client.close();
    silent.server.close();
    answering.server.close();
  }
});
