import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisKeys } from '@hearth/api';
import { startRedis, type RedisServer } from '../harness/index.js';
import { API_KEY, GatewayFixture, type RunningGateway } from '../gateway/fixture.js';
import { waitFor } from './fixtures.js';

/**
 * At least once under crashes, as deployed: a burst of Event calls goes to a gateway process
 * running its async workers too (the default role, as `hearth dev` and the chart run it), which
 * hands them to runtime shims. Mid-run that gateway is killed with SIGKILL and started again, and
 * Redis (AOF, fsync on every write) is killed and restarted. Every event answered with 202 must
 * be delivered or dead-lettered; duplicates are allowed and reported.
 */
const EVENTS = 10_000;
const SENDERS = 32;
const FUNCTION = 'burst';
/** Every 100th event fails on purpose, so the retry and dead-letter paths are part of the run. */
const plannedFailure = (seq: number) => seq % 100 === 0;

const gatewayEnv = {
  HEARTH_ASYNC_CONCURRENCY: '8',
  HEARTH_ASYNC_RETRY_DELAYS_MS: '150,300',
  // Short locks, so that the events the killed gateway held come back within seconds, not minutes.
  HEARTH_ASYNC_LOCK_MS: '2000',
  HEARTH_ASYNC_STALLED_INTERVAL_MS: '1000',
  HEARTH_ASYNC_REQUEUE_MIN_MS: '50',
  HEARTH_ASYNC_REQUEUE_MAX_MS: '500',
};

let redis: RedisServer;
let fixture: GatewayFixture;
let scratch: string;
let stopSending = false;

before(async () => {
  redis = await startRedis({ appendOnly: true });
  fixture = new GatewayFixture(redis.url);
  scratch = await mkdtemp(join(tmpdir(), 'hearth-durability-'));
});

after(async () => {
  stopSending = true;
  await fixture?.stop();
  await redis?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** How many times each event ran to completion, from the function's own record. */
async function readDeliveries(file: string): Promise<Map<number, number>> {
  const deliveries = new Map<number, number>();
  const text = await readFile(file, 'utf8').catch(() => '');
  for (const line of text.split('\n')) {
    if (line) deliveries.set(Number(line), (deliveries.get(Number(line)) ?? 0) + 1);
  }
  return deliveries;
}

test(
  `a burst of ${EVENTS} events survives its gateway killed with -9 and a Redis restart`,
  { timeout: 180_000 },
  async (t) => {
    // The function records each event it ran by appending a line (one small O_APPEND write, so
    // lines from its concurrent runtimes never interleave): cheaper than a call per event, which
    // lets ten thousand events fit the test's time on a busy machine.
    const deliveredFile = join(scratch, 'delivered');
    const route = await fixture.addFunction({
      name: FUNCTION,
      source: `
import { appendFileSync } from 'node:fs';
export const handler = async (event) => {
  if (event.fail) throw new Error('planned failure of ' + event.seq);
  appendFileSync(${JSON.stringify(deliveredFile)}, event.seq + '\\n');
  return null;
};`,
      spec: { async: { maxRetryAttempts: 1 }, concurrency: { perInstance: 2 } },
    });
    await Promise.all([fixture.addInstance(route), fixture.addInstance(route)]);
    let gateway: RunningGateway = await fixture.startGateway(gatewayEnv);

    const acknowledged = new Set<number>();
    let refusals = 0;
    let next = 0;
    const send = async (seq: number) => {
      // A refused or broken call is retried as a client would, and gets a new request id from the
      // gateway; only a 202 is a promise to deliver. While the gateway is down, calls fail at
      // once and go to its replacement as soon as it is up.
      while (!stopSending) {
        try {
          const answer = await fetch(`${gateway.url}/2015-03-31/functions/${FUNCTION}/invocations`, {
            method: 'POST',
            headers: { authorization: `Bearer ${API_KEY}`, 'x-amz-invocation-type': 'Event' },
            body: JSON.stringify({ seq, fail: plannedFailure(seq) }),
          });
          await answer.arrayBuffer();
          if (answer.status === 202) {
            acknowledged.add(seq);
            return;
          }
        } catch {
          // the gateway went away mid-call: not acknowledged
        }
        refusals += 1;
        await sleep(50);
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
    let acceptedAtKill = 0;
    const killGateway = (async () => {
      await waitFor(
        'deliveries to be under way',
        async () => (await readDeliveries(deliveredFile)).size >= 1500,
        90_000,
      );
      deliveredAtKill = (await readDeliveries(deliveredFile)).size;
      acceptedAtKill = acknowledged.size;
      await gateway.process.stop('SIGKILL');
      assert.equal((await gateway.process.exited).signal, 'SIGKILL');
      gateway = await fixture.startGateway(gatewayEnv);
    })();
    let acceptedAtRestart = 0;
    const restartRedis = (async () => {
      await waitFor('most of the burst to be accepted', () => acknowledged.size >= EVENTS * 0.6, 90_000);
      acceptedAtRestart = acknowledged.size;
      await redis.restart('SIGKILL');
    })();
    await Promise.all([killGateway, restartRedis]);
    await senders;
    const burstSeconds = (Date.now() - started) / 1000;

    let deliveries = new Map<number, number>();
    const deadLettered = new Set<number>();
    const unaccounted = () =>
      [...acknowledged].filter((seq) => !deliveries.has(seq) && !deadLettered.has(seq));
    await waitFor(
      'every acknowledged event to be delivered or dead-lettered',
      async () => {
        deliveries = await readDeliveries(deliveredFile);
        try {
          for (const [, fields] of await fixture.redis.xrange(RedisKeys.dlq(FUNCTION), '-', '+')) {
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
      `accepted ${acknowledged.size}/${EVENTS} in ${burstSeconds.toFixed(1)} s (${refusals} refusals retried by the senders); ` +
        `gateway killed after ${acceptedAtKill} accepted and ${deliveredAtKill} delivered, Redis restarted after ${acceptedAtRestart} accepted; ` +
        `delivered ${deliveries.size} distinct events, ${duplicates} duplicates; dead-lettered ${deadLettered.size} (${unplanned.length} not planned)`,
    );
    assert.equal(acknowledged.size, EVENTS, 'every event was eventually accepted');
    assert.deepEqual(unaccounted(), [], 'no accepted event was lost');
    const failures = [...acknowledged].filter(plannedFailure);
    assert.ok(
      failures.every((seq) => deadLettered.has(seq) && !deliveries.has(seq)),
      'the failing events were dead-lettered, not delivered',
    );
    assert.equal(gateway.process.child.exitCode, null, 'the restarted gateway survived the Redis restart');
  },
);
