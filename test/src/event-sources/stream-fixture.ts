/**
 * The parts a stream-mapping test or benchmark puts together: a recorder that handlers report to
 * over HTTP, and a MappingContext wired to a real gateway, real metrics and a real destination
 * sender, with the status a supervisor would write kept in memory.
 */
import { createServer, type Server } from 'node:http';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import {
  validateEventSourceMappingSpec,
  type EventSourceMappingSpec,
  type EventSourceMappingStatus,
} from '@hearth/api';
import { createDestinationSender } from '@hearth/controller/event-sources/destinations';
import { GatewayInvoker } from '@hearth/controller/event-sources/gateway-invoker';
import { EventSourceMetrics } from '@hearth/controller/event-sources/metrics';
import type { MappingContext } from '@hearth/controller/event-sources/types';

/** What a test handler posts to the recorder: one call of the function. */
export interface HandlerReport {
  /** Date.now() in the handler. */
  at: number;
  /** Whether the handler is about to fail this call. */
  failed?: boolean;
  records: { seq: string; key: string; data: string; arrival: number }[];
  [extra: string]: unknown;
}

export interface Recorder {
  url: string;
  readonly reports: HandlerReport[];
  /** Resolves once `predicate` holds over the reports so far (checked on each new one). */
  waitFor(predicate: (reports: HandlerReport[]) => boolean, timeoutMs?: number, what?: string): Promise<void>;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 that keeps every JSON body POSTed to it. */
export async function startRecorder(): Promise<Recorder> {
  const reports: HandlerReport[] = [];
  const watchers = new Set<() => void>();
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      reports.push(JSON.parse(Buffer.concat(chunks).toString()) as HandlerReport);
      response.end('ok');
      for (const watcher of watchers) watcher();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('recorder has no address');
  return {
    url: `http://127.0.0.1:${address.port}/`,
    reports,
    waitFor(predicate, timeoutMs = 15_000, what = 'the expected handler reports') {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate(reports)) return;
          done();
          resolve();
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(`no ${what} within ${timeoutMs} ms; reports:\n${JSON.stringify(reports, null, 1)}`),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * The source of a Node handler that reports each call (its records decoded) to the recorder
 * named by the RECORDER variable, then runs `body` with `records` and `event` in scope.
 */
export function reportingHandler(body: string, prelude = ''): string {
  return `
${prelude}
export const handler = async (event) => {
  const records = event.Records.map((r) => ({
    seq: r.kinesis.sequenceNumber,
    key: r.kinesis.partitionKey,
    data: Buffer.from(r.kinesis.data, 'base64').toString(),
    arrival: r.kinesis.approximateArrivalTimestamp,
  }));
  const report = async (extra = {}) => {
    const response = await fetch(process.env.RECORDER, {
      method: 'POST',
      body: JSON.stringify({ at: Date.now(), records, ...extra }),
    });
    await response.arrayBuffer();
  };
  ${body}
};
`;
}

export interface TestMapping {
  ctx: MappingContext;
  spec: EventSourceMappingSpec;
  /** The status as the supervisor would have written it, patches merged. */
  status: EventSourceMappingStatus;
  metrics: EventSourceMetrics;
  /** The value of one of the mapping's counters (summed over outcomes unless one is given). */
  count(
    metric: 'recordsRead' | 'batches' | 'retries' | 'failures' | 'duplicates',
    outcome?: string,
  ): Promise<number>;
  close(): Promise<void>;
}

/** A MappingContext as the supervisor would build it, for a mapping with `spec` (defaults filled in). */
export function testMapping(options: {
  name: string;
  spec: Record<string, unknown>;
  gatewayUrl: string;
  token: string;
  redisUrl: string;
  redis: Redis;
}): TestMapping {
  const checked = validateEventSourceMappingSpec(options.spec);
  if (!checked.spec) throw new Error(`bad mapping spec: ${JSON.stringify(checked.problems)}`);
  const spec = checked.spec;
  const invoker = new GatewayInvoker({ url: options.gatewayUrl, token: options.token });
  const metrics = new EventSourceMetrics(new Registry());
  const status: EventSourceMappingStatus = {};
  const ctx: MappingContext = {
    id: `default/${options.name}`,
    name: options.name,
    namespace: 'default',
    uid: `uid-${options.name}`,
    spec,
    invoker,
    redisUrl: options.redisUrl,
    sendToDestination: createDestinationSender({ redis: options.redis, invoker }),
    metrics,
    logger: pino({ level: process.env.HEARTH_TEST_LOGS === '1' ? 'debug' : 'silent' }),
    region: 'us-east-1',
    accountId: '000000000000',
    reportStatus: (patch) => Object.assign(status, patch),
  };
  return {
    ctx,
    spec,
    status,
    metrics,
    async count(metric, outcome) {
      const values = (await metrics[metric].get()).values.filter((v) => {
        const labels = v.labels as Record<string, string | number | undefined>;
        return labels.mapping === options.name && (outcome === undefined || labels.outcome === outcome);
      });
      return values.reduce((sum, v) => sum + v.value, 0);
    },
    close: () => invoker.close(),
  };
}
