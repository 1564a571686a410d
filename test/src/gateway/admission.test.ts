import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FunctionRoute } from '@hearth/api';
import { startRedis, type RedisServer } from '../harness/index.js';
import { API_KEY, GatewayFixture, SLEEPER, maxOverlap, waitFor, type RunningGateway } from './fixture.js';

const LIMIT = 3;
const LEASE_TTL_MS = 1500;
const UNRESERVED_LEASES = 'hearth:concurrency:unreserved';

interface Outcome {
  status: number;
  body: { start: number; end: number } | { Reason?: string };
}

async function invoke(gateway: RunningGateway, ms: number): Promise<Outcome> {
  const response = await fetch(`${gateway.url}/2015-03-31/functions/sleeper/invocations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}` },
    body: JSON.stringify({ ms }),
  });
  return { status: response.status, body: (await response.json()) as Outcome['body'] };
}

const ran = (outcomes: Outcome[]) =>
  outcomes.filter((o) => o.status === 200).map((o) => o.body as { start: number; end: number });

describe('cluster-wide concurrency: two gateway processes on one Redis', () => {
  let redis: RedisServer;
  let fixture: GatewayFixture;
  let route: FunctionRoute;
  let first: RunningGateway;
  let second: RunningGateway;

  before(async () => {
    redis = await startRedis();
    fixture = new GatewayFixture(redis.url);
    route = await fixture.addFunction({
      name: 'sleeper',
      source: SLEEPER,
      spec: { timeoutSeconds: 20, concurrency: { perInstance: LIMIT } },
    });
    // Twice the limit in instance slots: admission, not a lack of instances, is what caps the calls.
    await Promise.all([fixture.addInstance(route), fixture.addInstance(route)]);
    const env = { HEARTH_ACCOUNT_CONCURRENCY: String(LIMIT), HEARTH_LEASE_TTL_MS: String(LEASE_TTL_MS) };
    [first, second] = await Promise.all([fixture.startGateway(env), fixture.startGateway(env)]);
    // Warm every runtime slot so cold starts do not blur the timing below.
    await Promise.all(Array.from({ length: LIMIT }, (_, i) => invoke(i % 2 ? first : second, 200)));
    await Promise.all(Array.from({ length: LIMIT }, (_, i) => invoke(i % 2 ? first : second, 200)));
  });

  after(async () => {
    await fixture?.stop();
    await redis?.stop();
  });

  test('a burst split across both gateways: exactly the limit runs, the rest get 429 with the reason', async () => {
    // Each admitted call runs long enough that the whole burst arrives while it runs, even on a busy machine.
    const outcomes = await Promise.all(
      Array.from({ length: 4 * LIMIT }, (_, i) => invoke(i % 2 ? first : second, 3000)),
    );
    const statuses = outcomes.map((o) => o.status);
    assert.equal(statuses.filter((s) => s === 200).length, LIMIT, `statuses: ${statuses.join(',')}`);
    assert.equal(statuses.filter((s) => s === 429).length, 3 * LIMIT);
    for (const o of outcomes.filter((x) => x.status === 429))
      assert.equal((o.body as { Reason?: string }).Reason, 'ConcurrentInvocationLimitExceeded');
    assert.equal(maxOverlap(ran(outcomes)), LIMIT);
  });

  test('overload at 10x the limit: only 200s and 429s, never more than the limit at once, memory stays bounded', async () => {
    const before = await second.residentBytes();
    const outcomes: Outcome[] = [];
    const until = Date.now() + 3000;
    await Promise.all(
      Array.from({ length: 10 * LIMIT }, async (_, i) => {
        while (Date.now() < until) outcomes.push(await invoke(i % 2 ? first : second, 50));
      }),
    );
    const statuses = new Set(outcomes.map((o) => o.status));
    assert.deepEqual([...statuses].sort(), [200, 429]);
    assert.ok(ran(outcomes).length >= LIMIT, `${ran(outcomes).length} calls ran`);
    assert.ok(maxOverlap(ran(outcomes)) <= LIMIT);
    const grown = (await second.residentBytes()) - before;
    assert.ok(grown < 64 * 1024 * 1024, `the gateway grew by ${Math.round(grown / 1048576)} MB`);
    await waitFor(
      async () => (await fixture.redis.zcard(UNRESERVED_LEASES)) === 0,
      2000,
      'every lease is given back after the load',
    );
  });

  test('calls running longer than the lease TTL keep their slots (leases are renewed)', async () => {
    const long = Promise.all(Array.from({ length: LIMIT }, () => invoke(second, 3 * LEASE_TTL_MS)));
    await sleep(2 * LEASE_TTL_MS);
    assert.equal((await invoke(first, 0)).status, 429, 'the slots are still taken after twice the TTL');
    assert.deepEqual(
      (await long).map((o) => o.status),
      Array.from({ length: LIMIT }, () => 200),
    );
  });

  test('a gateway killed with -9 gives its slots back once its leases expire', async () => {
    const doomed = Array.from({ length: LIMIT }, () => invoke(first, 8000).catch(() => undefined));
    await waitFor(
      async () => (await fixture.redis.zcard(UNRESERVED_LEASES)) === LIMIT,
      5000,
      'the first gateway holds every slot',
    );
    await first.process.stop('SIGKILL');
    void Promise.all(doomed);
    const killedAt = Date.now();
    assert.equal((await invoke(second, 0)).status, 429, 'the dead gateway still holds its slots');
    // Expired leases are dropped by the next admission, so ask the way a caller would.
    await waitFor(
      async () => (await invoke(second, 0)).status === 200,
      LEASE_TTL_MS + 2000,
      'the leases expired',
    );
    assert.ok(Date.now() - killedAt >= LEASE_TTL_MS / 3, 'not given back before expiry');
    const outcomes = await Promise.all(Array.from({ length: LIMIT }, () => invoke(second, 300)));
    assert.deepEqual(
      outcomes.map((o) => o.status),
      Array.from({ length: LIMIT }, () => 200),
    );
  });
});
