import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  /** The port it listens on (the one picked when asked for 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (the registry, in its own content type) and `GET /healthz`, which answers
 * 503 until `isStarted()` says the controller has started (what `hearth dev` waits for).
 */
export async function startMetricsServer(
  registry: Registry,
  port: number,
  host: string | undefined,
  isStarted: () => boolean,
): Promise<MetricsServer> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/healthz') {
      const started = isStarted();
      response
        .writeHead(started ? 200 : 503, { 'content-type': 'text/plain' })
        .end(started ? 'ok\n' : 'starting\n');
    } else if (path === '/metrics') {
      registry.metrics().then(
        (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (error: unknown) =>
          response.writeHead(500, { 'content-type': 'text/plain' }).end(`${(error as Error).message}\n`),
      );
    } else {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
