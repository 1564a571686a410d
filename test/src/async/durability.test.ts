import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { RedisKeys } from '@hearth/api';
import { StaticDiscovery } from '@hearth/gateway/discovery/static';
import { createAsyncQueue, type AsyncQueue } from '@hearth/gateway/async/index';
import { startProcess, startRedis, type RedisServer, type RunningProcess } from '../harness/index.js';
import { functionRoute, waitFor } from './fixtures.js';

/**
 * At least once under crashes: a burst of events is accepted while the worker process is killed
 * with SIGKILL and Redis (AOF, fsync on every write) is killed and restarted. Every event whose
 * enqueue resolved (the moment the gateway answers 202) must be delivered or dead-lettered;
 * duplicates are allowed and reported.
 */
const EVENTS = 10_000;
const SENDERS = 32;
const FUNCTION = 'burst';
/** Every 100th event fails on purpose, so the dead-letter path is part of the run. */
const plannedFailure = (seq: number) => seq % 100 === 0;
const WORKER_MAIN = fileURLToPath(new URL('./worker-process.js', import.meta.url));

let redis: RedisServer;
let recorder: Server;
let queue: AsyncQueue | undefined;
let client: Redis | undefined;
const workers: RunningProcess[] = [];
const deliveries = new Map<number, number>();
let stopSending = false;

before(async () => {
  redis = await startRedis({ appendOnly: true });
  recorder = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const { seq } = JSON.parse(Buffer.concat(chunks).toString()) as { seq: number };
      deliveries.set(seq, (deliveries.get(seq) ?? 0) + 1);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
});

after(async () => {
  stopSending = true;
  await queue?.close();
  client?.disconnect();
  for (const worker of workers) await worker.stop('SIGKILL');
  await new Promise((resolve) => recorder?.close(resolve));
  await redis?.stop();
});

function startWorker(): Promise<RunningProcess> {
  return startProcess({
    name: `async-worker-${workers.length + 1}`,
    command: process.execPath,
    args: [WORKER_MAIN],
    env: {
      ...process.env,
      REDIS_URL: redis.url,
      RECORDER_URL: `http://127.0.0.1:${(recorder.address() as AddressInfo).port}/delivered`,
      FUNCTION_NAME: FUNCTION,
    },
    ready: { line: /worker ready/ },
  }).then((worker) => {
    workers.push(worker);
    return worker;
  });
}

test(
  `a burst of ${EVENTS} events survives a worker killed with -9 and a Redis restart`,
  { timeout: 150_000 },
  async (t) => {
    const discovery = new StaticDiscovery();
    discovery.setFunction(functionRoute(FUNCTION, { maxRetryAttempts: 1 }));
    queue = createAsyncQueue({ redisUrl: redis.url, discovery, logger: pino({ level: 'silent' }) });
    client = new Redis(redis.url);
    let worker = await startWorker();

    const acknowledged = new Set<number>();
    let refusals = 0;
    let next = 0;
    const send = async (seq: number) => {
      // A refused call is retried as a client would, and gets a new request id as the gateway
      // would give it; only a resolved enqueue (the 202) is a promise to deliver.
      while (!stopSending) {
        try {
          await queue!.enqueue({
            functionName: FUNCTION,
            requestId: randomUUID(),
            payload: JSON.stringify({ seq, fail: plannedFailure(seq) }),
          });
          acknowledged.add(seq);
          return;
        } catch {
          refusals += 1;
          await sleep(50);
        }
      }
    };
    const started = Date.now();
    const senders = Promise.all(
      Array.from({ length: SENDERS }, async () => {
        while (next < EVENTS && !stopSending) await send(next++);
      }),
    );

    // Chaos while the burst is coming in and being worked on: each strikes at its own moment.
    let deliveredAtKill = 0;
    const killWorker = (async () => {
      await waitFor('deliveries to be under way', () => deliveries.size >= 1500, 90_000);
      deliveredAtKill = deliveries.size;
      await worker.stop('SIGKILL');
      assert.equal((await worker.exited).signal, 'SIGKILL');
      worker = await startWorker();
    })();
    let acceptedAtRestart = 0;
    const restartRedis = (async () => {
      await waitFor('most of the burst to be accepted', () => acknowledged.size >= EVENTS * 0.6, 90_000);
      acceptedAtRestart = acknowledged.size;
      await redis.restart('SIGKILL');
    })();
    await Promise.all([killWorker, restartRedis]);
    await senders;
    const burstSeconds = (Date.now() - started) / 1000;

    const deadLettered = new Set<number>();
    const unaccounted = () =>
      [...acknowledged].filter((seq) => !deliveries.has(seq) && !deadLettered.has(seq));
    await waitFor(
      'every acknowledged event to be delivered or dead-lettered',
      async () => {
        try {
          for (const [, fields] of await client!.xrange(RedisKeys.dlq(FUNCTION), '-', '+')) {
            deadLettered.add((JSON.parse(fields[fields.indexOf('payload') + 1]!) as { seq: number }).seq);
          }
        } catch {
          return false; // the test's own connection is still coming back
        }
        return unaccounted().length === 0;
      },
      90_000,
    ).catch((error: Error) => {
      throw new Error(
        `${error.message}; ${unaccounted().length} missing, e.g. ${unaccounted().slice(0, 20).join(', ')}`,
      );
    });

    const duplicates = [...deliveries.values()].reduce((sum, n) => sum + n - 1, 0);
    const unplanned = [...deadLettered].filter((seq) => !plannedFailure(seq));
    t.diagnostic(
      `accepted ${acknowledged.size}/${EVENTS} in ${burstSeconds.toFixed(1)} s (${refusals} refusals retried by the sender); ` +
        `worker killed after ${deliveredAtKill} deliveries, Redis restarted after ${acceptedAtRestart} accepted; ` +
        `delivered ${deliveries.size} distinct events, ${duplicates} duplicates; dead-lettered ${deadLettered.size} (${unplanned.length} not planned)`,
    );
    assert.equal(acknowledged.size, EVENTS, 'every event was eventually accepted');
    assert.deepEqual(unaccounted(), [], 'no accepted event was lost');
    const failures = [...acknowledged].filter(plannedFailure);
    assert.ok(
      failures.every((seq) => deadLettered.has(seq) && !deliveries.has(seq)),
      'the failing events were dead-lettered, not delivered',
    );
    assert.equal(worker.child.exitCode, null, 'the replacement worker survived the Redis restart');
  },
);
