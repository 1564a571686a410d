import { randomUUID } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { HttpConnection, type PendingAnswer } from '@hearth/api/http-connection';
import { GatewayError } from '../core/errors.js';
import { BodyTooLargeError } from './body.js';
import { serviceErrorAnswer } from './errors.js';
import { headerLines } from './answer.js';
import { isInvokeRoute, type InvokeCall, type InvokeRoutes } from './invoke-routes.js';

export interface FrontOptions {
  /** Takes every connection at a request the front does not serve, from that request on. */
  nodeServer: HttpServer;
  invoke: Pick<InvokeRoutes, 'serve'>;
  /** The largest body an Invoke takes (sync); a smaller limit (Event) is checked per call. */
  bodyLimit: number;
  /** An idle connection is closed after this long, as Node's keepAliveTimeout does. */
  idleTimeoutMs: number;
  /** Node's server's headersTimeout and requestTimeout, unless given (tests shorten them). */
  requestTimeouts?: { headersMs: number; requestMs: number };
}

/** Node's HTTP server's defaults, which the gateway had before its front. */
const NODE_REQUEST_TIMEOUTS = { headersMs: 60_000, requestMs: 300_000 };

export interface Front {
  /** Listens for the gateway; not listening yet. */
  readonly server: Server;
  /** Ends the connections the front holds that owe no answer; the others after their answers. */
  closeIdleConnections(): void;
}

/**
 * The gateway's listening socket. Invoke calls (a POST to a canonical Invoke path) are parsed and
 * answered on the socket itself; a connection goes over to Node's HTTP server (and Express) at its
 * first request of any other kind, with the bytes read of it. Node's server makes a request and
 * a response object with their streams and header objects per call: taking it off the Invoke
 * path cut the gateway's CPU per no-op call by a third to a half (docs/benchmarks.md).
 */
export function createFront(options: FrontOptions): Front {
  const connections = new Set<HttpConnection>();
  const server = createServer({ noDelay: true }, (socket) => {
    let gone: AbortSignal | undefined;
    const connection: HttpConnection = new HttpConnection(socket, {
      bodyLimit: options.bodyLimit,
      idleTimeoutMs: options.idleTimeoutMs,
      requestTimeouts: options.requestTimeouts ?? NODE_REQUEST_TIMEOUTS,
      passOn: {
        serves: isInvokeRoute,
        handOver: (socket: Socket, rest: Buffer) => {
          connections.delete(connection);
          if (rest.length > 0) socket.unshift(rest);
          options.nodeServer.emit('connection', socket);
          socket.resume();
        },
      },
      onRequest: (request, answer) => {
        const call: InvokeCall = {
          url: request.target,
          headers: request.headers,
          readBody: (limit) =>
            request.body === undefined || request.body.length > limit
              ? Promise.reject(new BodyTooLargeError())
              : Promise.resolve(request.body),
          gone: (gone ??= signalOnClose(connection)),
        };
        void options.invoke.serve(call).then((reply) => {
          connection.reply(answer, reply.status, reply.body, headerLines(reply), reply.json);
        });
      },
      onMalformed: (answer: PendingAnswer, status, message) => {
        const reply = serviceErrorAnswer(
          new GatewayError('InvalidRequestContentException', message),
          randomUUID(),
        );
        // The parser's status says more than the error type's 400: a head too large, a timeout.
        connection.reply(answer, status, reply.body, headerLines(reply));
      },
    });
    connections.add(connection);
    connection.onClose(() => connections.delete(connection));
  });
  return {
    server,
    closeIdleConnections() {
      for (const connection of connections) connection.closeWhenIdle();
    },
  };
}

function signalOnClose(connection: HttpConnection): AbortSignal {
  const controller = new AbortController();
  connection.onClose(() => controller.abort());
  return controller.signal;
}
