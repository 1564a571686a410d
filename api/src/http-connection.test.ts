import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HttpConnection, type HttpConnectionOptions, type PendingAnswer } from './http-connection.js';

// The shim's servers close a connection idle for 65 s (longer than any gateway keeps one); the
// same rule with a short timeout here.
const IDLE_MS = 150;
const REQUEST = 'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n';

/** A server whose connections hold each request's answer until the test releases it. */
async function serve(
  options: Pick<HttpConnectionOptions<PendingAnswer>, 'idleTimeoutMs' | 'passOn' | 'requestTimeouts'>,
) {
  const owed: Array<() => void> = [];
  const connections: HttpConnection[] = [];
  const server: Server = createServer((socket) => {
    const connection: HttpConnection = new HttpConnection(socket, {
      ...options,
      bodyLimit: 1024,
      onRequest: (_request, answer: PendingAnswer) =>
        owed.push(() => connection.reply(answer, 200, Buffer.from('ok'))),
      onMalformed: (answer, status) => connection.reply(answer, status, Buffer.alloc(0)),
    });
    connections.push(connection);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port, owed, connections };
}

/** Waits for `check` to hold, at most 2 s. */
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = performance.now() + 2000;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function collect(socket: Socket): { text: () => string; closedAt: Promise<number> } {
  let text = '';
  socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  return { text: () => text, closedAt: once(socket, 'close').then(() => performance.now()) };
}

test('an idle connection is closed after the idle timeout, once its answers are sent', async () => {
  const { server, port, owed } = await serve({ idleTimeoutMs: IDLE_MS });
  const client = connect(port, '127.0.0.1');
  try {
    const received = collect(client);
    client.write(REQUEST);
    await until('the request', () => owed.length > 0);
    owed.shift()!();
    await until('the answer', () => received.text().includes('\r\n\r\nok'));
    const answeredAt = performance.now();
    const idleFor = (await received.closedAt) - answeredAt;
    assert.ok(idleFor >= IDLE_MS - 20 && idleFor < IDLE_MS + 1000, `closed after ${idleFor} ms idle`);
  } finally {
    client.destroy();
    server.close();
  }
});

test('a connection that still owes an answer is not closed for idleness, only once idle after it', async () => {
  const { server, port, owed } = await serve({ idleTimeoutMs: IDLE_MS });
  const client = connect(port, '127.0.0.1');
  try {
    const received = collect(client);
    client.write(REQUEST);
    // A parked /next: nothing moves on the connection for longer than the idle timeout.
    await sleep(IDLE_MS * 3);
    assert.equal(owed.length, 1);
    owed.shift()!();
    await until('the answer', () => received.text().includes('\r\n\r\nok'));
    assert.match(received.text(), /^HTTP\/1\.1 200 /);
    assert.equal(client.destroyed, false, 'still open when the answer came');
    // Idle from then on: closed after the idle timeout, as any idle connection.
    await until('the close for idleness', () => client.closed);
  } finally {
    client.destroy();
    server.close();
  }
});

test('a request the connection does not serve hands the socket over once the answers owed are sent', async () => {
  const handedOver: string[] = [];
  const { server, port, owed } = await serve({
    passOn: {
      serves: (_method, target) => target === '/mine',
      handOver: (handed, rest) => {
        handedOver.push(rest.toString());
        // The next server reads on from where the connection stopped.
        handed.unshift(rest);
        handed.on('data', (data: Buffer) => {
          if (data.includes('/theirs')) handed.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\ntheirs');
        });
        handed.resume();
      },
    },
  });
  const client = connect(port, '127.0.0.1');
  try {
    const received = collect(client);
    client.write('GET /mine HTTP/1.1\r\n\r\nGET /theirs HTTP/1.1\r\n\r\n');
    await until('the first request', () => owed.length === 1);
    await sleep(50);
    assert.equal(handedOver.length, 0, 'not handed over while an answer is owed');
    owed.shift()!();
    await received.closedAt;
    assert.deepEqual(handedOver, ['GET /theirs HTTP/1.1\r\n\r\n']);
    const text = received.text();
    assert.ok(text.indexOf('\r\n\r\nok') < text.indexOf('theirs'), `answers in order: ${text}`);
  } finally {
    client.destroy();
    server.close();
  }
});

test('closeWhenIdle ends an idle connection at once, a busy one after the answers it owes', async () => {
  const { server, port, owed, connections } = await serve({});
  const idle = connect(port, '127.0.0.1');
  const busy = connect(port, '127.0.0.1');
  try {
    const idleReceived = collect(idle);
    const busyReceived = collect(busy);
    busy.write(REQUEST);
    await until('both connections and the request', () => connections.length === 2 && owed.length === 1);
    for (const connection of connections) connection.closeWhenIdle();
    await idleReceived.closedAt;
    assert.equal(idleReceived.text(), '');
    await sleep(50);
    assert.equal(busy.destroyed, false, 'the busy connection waits for its answer');
    owed.shift()!();
    await busyReceived.closedAt;
    assert.match(busyReceived.text(), /^HTTP\/1\.1 200 OK\r\n[^]*connection: close\r\n\r\nok$/);
  } finally {
    idle.destroy();
    busy.destroy();
    server.close();
  }
});

const TIMEOUTS = { headersMs: 150, requestMs: 400 };

/** When the connection closed; fails if it is still open after `ms`. */
function closedWithin(received: { closedAt: Promise<number> }, ms: number): Promise<number> {
  const late = sleep(ms, undefined, { ref: false }).then(() => {
    throw new Error(`still open after ${ms} ms`);
  });
  return Promise.race([received.closedAt, late]);
}

test('a request head that does not arrive in time gets 408 and the connection ends', async () => {
  const { server, port, owed } = await serve({ requestTimeouts: TIMEOUTS });
  const client = connect(port, '127.0.0.1');
  try {
    const received = collect(client);
    const sentAt = performance.now();
    client.write('POST /invoke HTTP/1.1\r\nHost: x\r\n');
    const closedAfter = (await closedWithin(received, 3000)) - sentAt;
    assert.match(received.text(), /^HTTP\/1\.1 408 Request Timeout\r\n[^]*connection: close\r\n/);
    assert.ok(
      closedAfter >= TIMEOUTS.headersMs - 20 && closedAfter < TIMEOUTS.headersMs + 1000,
      `${closedAfter} ms`,
    );
    assert.equal(owed.length, 0, 'no request was taken');
  } finally {
    client.destroy();
    server.close();
  }
});

test('a body that does not arrive whole in time gets 408 after the answers owed before it', async () => {
  const { server, port, owed } = await serve({ requestTimeouts: TIMEOUTS });
  const client = connect(port, '127.0.0.1');
  try {
    const received = collect(client);
    const sentAt = performance.now();
    // A whole request, then the head of a second whose body stops half-way.
    client.write(`${REQUEST}POST /invoke HTTP/1.1\r\nHost: x\r\ncontent-length: 10\r\n\r\n12345`);
    await until('the first request', () => owed.length === 1);
    await sleep(TIMEOUTS.headersMs + 100);
    assert.equal(received.text(), '', 'past the head timeout a body still has time');
    owed.shift()!();
    const closedAfter = (await closedWithin(received, 3000)) - sentAt;
    assert.match(received.text(), /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nokHTTP\/1\.1 408 Request Timeout\r\n/);
    assert.ok(
      closedAfter >= TIMEOUTS.requestMs - 20 && closedAfter < TIMEOUTS.requestMs + 1000,
      `${closedAfter} ms`,
    );
  } finally {
    client.destroy();
    server.close();
  }
});

test('a request sent in parts within the limits is served, and an idle connection has no request deadline', async () => {
  const { server, port, owed } = await serve({ requestTimeouts: TIMEOUTS });
  const client = connect(port, '127.0.0.1');
  try {
    const received = collect(client);
    client.write('GET /readyz HTTP/1.1\r\n');
    await sleep(TIMEOUTS.headersMs / 2);
    client.write('Host: x\r\n\r\n');
    await until('the request', () => owed.length === 1);
    owed.shift()!();
    await until('the answer', () => received.text().includes('\r\n\r\nok'));
    // Idle between requests for longer than both limits: still open, and serves the next one.
    await sleep(TIMEOUTS.requestMs + 100);
    assert.equal(client.destroyed, false);
    assert.doesNotMatch(received.text(), /408/);
    client.write(REQUEST);
    await until('the second request', () => owed.length === 1);
  } finally {
    client.destroy();
    server.close();
  }
});

test('a client pipelining more calls than it has answers for is not read from until answers go out', async () => {
  const { server, port, owed } = await serve({});
  const client = connect(port, '127.0.0.1');
  try {
    const received = collect(client);
    client.write(REQUEST.repeat(100));
    await sleep(200);
    assert.equal(owed.length, 32, 'reading stops at 32 answers owed');
    // Each answer released lets the next request in, until all 100 are answered.
    let answered = 0;
    while (answered < 100) {
      await until('a request', () => owed.length > 0);
      owed.shift()!();
      answered++;
    }
    await until('all the answers', () => received.text().split('\r\n\r\nok').length - 1 === 100);
  } finally {
    client.destroy();
    server.close();
  }
});

test('a client that leaves its answers unread is not read from until it takes them', async () => {
  const big = Buffer.alloc(1024 * 1024, 'x');
  let taken = 0;
  const server: Server = createServer((socket) => {
    const connection: HttpConnection = new HttpConnection(socket, {
      bodyLimit: 1024,
      onRequest: (_request, answer) => {
        taken++;
        connection.reply(answer, 200, big, '', false);
      },
      onMalformed: (answer, status) => connection.reply(answer, status, Buffer.alloc(0)),
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  try {
    client.pause();
    client.write(REQUEST.repeat(100));
    await sleep(300);
    // The kernel's socket buffers hold a few answers; without the pause all 100 (100 MB) would
    // wait in the server's memory.
    assert.ok(taken < 50, `${taken} requests taken while the client read nothing`);
    let bytes = 0;
    client.on('data', (chunk: Buffer) => (bytes += chunk.length));
    client.resume();
    await until('every answer', () => taken === 100 && bytes >= 100 * big.length);
  } finally {
    client.destroy();
    server.close();
  }
});
