import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import {
  ConcurrencyKeys,
  ConcurrencyLeases,
  type AdmissionScope,
  type ConcurrencyLease,
} from '@hearth/gateway/admission/concurrency';
import { startRedis, useRedis, type RedisServer } from '../harness/index.js';
import { API_KEY, SLEEPER, GatewayFixture, waitFor } from './fixture.js';

const scope = (limit: number): AdmissionScope => ({
  key: ConcurrencyKeys.unreserved,
  limit,
  reason: 'ConcurrentInvocationLimitExceeded',
});
const HOLDERS = ConcurrencyKeys.blockHolders(ConcurrencyKeys.unreserved);

/** What a call does: a kept lease if there is one, else an admission in Redis. */
async function admit(leases: ConcurrencyLeases, s: AdmissionScope): Promise<ConcurrencyLease | undefined> {
  return leases.takeKept(s) ?? (await leases.acquire(s));
}

describe('concurrency leases taken in blocks (two gateways on one Redis)', () => {
  const shared = useRedis();
  const gateways: { leases: ConcurrencyLeases; connection: Redis }[] = [];

  async function gateway(id: string, ttlMs = 15_000): Promise<ConcurrencyLeases> {
    const connection = new Redis(shared.server.url);
    const leases = new ConcurrencyLeases(connection, id, ttlMs, (error) => assert.fail(String(error)));
    await leases.start();
    gateways.push({ leases, connection });
    return leases;
  }

  afterEach(async () => {
    for (const { leases, connection } of gateways.splice(0)) {
      await leases.stop();
      connection.disconnect();
    }
    await shared.client.flushall();
  });

  test('far from the limit one admission takes a block, and the next calls run on it without Redis', async () => {
    const leases = await gateway('a');
    const limit = scope(1000);
    const first = await admit(leases, limit);
    assert.ok(first);
    assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), 16, 'a block of 16 leases');
    assert.deepEqual(await shared.client.zrange(HOLDERS, '0', '-1'), ['a']);
    leases.release(first);
    const scriptsBefore = await scriptCalls(shared.client);
    for (let i = 0; i < 50; i++) {
      const lease = leases.takeKept(limit);
      assert.ok(lease, 'a kept lease, no admission');
      leases.release(lease);
    }
    assert.equal(await scriptCalls(shared.client), scriptsBefore);
    assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), 16);
  });

  test('while the block lasts every finished call keeps its lease, a batch larger than a block too', async () => {
    const leases = await gateway('a');
    const limit = scope(1000);
    const running: ConcurrencyLease[] = [];
    for (let i = 0; i < 40; i++) {
      const lease = await admit(leases, limit);
      assert.ok(lease);
      running.push(lease);
    }
    const held = await shared.client.zcard(ConcurrencyKeys.unreserved);
    assert.equal(held, 48, 'three blocks of 16 for 40 calls at once');
    // A batch of answers: all 40 leases stay with the gateway for the next batch of calls.
    for (const lease of running.splice(0)) leases.release(lease);
    await sleep(50);
    assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), held, 'no lease went back to Redis');
    const scriptsBefore = await scriptCalls(shared.client);
    for (let i = 0; i < 40; i++) {
      const lease = leases.takeKept(limit);
      assert.ok(lease, `call ${i + 1} of the next batch runs on a kept lease`);
      running.push(lease);
    }
    assert.equal(await scriptCalls(shared.client), scriptsBefore, 'the next batch needed no admission');
    for (const lease of running) leases.release(lease);
  });

  test('leases left unused are given back within a second, and the block with them', async () => {
    const leases = await gateway('a');
    const limit = scope(1000);
    const running = await admit(leases, limit);
    assert.ok(running);
    // One call keeps running: the other 15 leases go back, the running call's stays.
    await waitFor(
      async () => (await shared.client.zcard(ConcurrencyKeys.unreserved)) === 1,
      1500,
      'the 15 unused leases given back',
    );
    leases.release(running);
    await waitFor(
      async () =>
        (await shared.client.zcard(ConcurrencyKeys.unreserved)) === 0 &&
        (await shared.client.zcard(HOLDERS)) === 0,
      1500,
      'the last lease and the block registration given back',
    );
  });

  test('leases Redis lost (a restart without persistence) end the block: calls are counted in Redis again', async () => {
    // Renewed every 200 ms.
    const leases = await gateway('a', 600);
    const limit = scope(1000);
    leases.release((await admit(leases, limit))!);
    await shared.client.flushall();
    await waitFor(
      async () => {
        const lease = await admit(leases, limit);
        const counted = (await shared.client.zcard(ConcurrencyKeys.unreserved)) > 0;
        leases.release(lease!);
        return counted;
      },
      2000,
      'a call counted in Redis again',
    );
  });

  test('a changed limit ends the block: its kept leases go back and the next call is admitted in Redis', async () => {
    const leases = await gateway('a');
    leases.release((await admit(leases, scope(1000)))!);
    assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), 16);
    assert.equal(leases.takeKept(scope(999)), undefined, 'no kept lease under another limit');
    await waitFor(
      async () =>
        (await shared.client.zcard(ConcurrencyKeys.unreserved)) === 0 &&
        (await shared.client.zcard(HOLDERS)) === 0,
      // Well before the trim would end the idle block (its second interval, 1 s).
      400,
      'the kept leases and the block registration given back',
    );
    assert.ok(await admit(leases, scope(999)), 'admitted in Redis under the new limit');
    assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), 16, 'a new block of 16');
  });

  test('half full, every call takes its own lease', async () => {
    const leases = await gateway('a');
    const limit = scope(64);
    const held: ConcurrencyLease[] = [];
    // Blocks of 4 while the scope stays at most half full (32), then one lease per call.
    while ((await shared.client.zcard(ConcurrencyKeys.unreserved)) < 32)
      held.push((await admit(leases, limit))!);
    // Use up the kept leases of the last block first.
    while (held.length < 32) held.push((await admit(leases, limit))!);
    for (let count = 33; count <= 40; count++) {
      held.push((await admit(leases, limit))!);
      assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), count);
    }
    assert.equal(leases.takeKept(limit), undefined, 'a finished call no longer leaves its lease');
    leases.release(held.pop()!);
    assert.equal(leases.takeKept(limit), undefined);
    await waitFor(
      async () => (await shared.client.zcard(ConcurrencyKeys.unreserved)) === 39,
      1000,
      'the released lease given back to Redis',
    );
  });

  test('a full scope gets back the leases another gateway keeps unused: exactly the limit runs, then 429 at once', async () => {
    const a = await gateway('a');
    const b = await gateway('b');
    const limit = scope(64);
    const onA = await admit(a, limit);
    assert.ok(onA);
    assert.equal(
      await shared.client.zcard(ConcurrencyKeys.unreserved),
      4,
      'a keeps 3 unused leases of its block',
    );
    const onB: ConcurrencyLease[] = [];
    for (let i = 0; i < 63; i++) {
      const lease = await admit(b, limit);
      assert.ok(lease, `call ${i + 1} on b admitted while slots are free`);
      onB.push(lease);
    }
    assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), 64);
    assert.equal(a.takeKept(limit), undefined, 'a gave its unused leases back');
    const started = Date.now();
    assert.equal(await admit(b, limit), undefined, 'the 65th call is throttled');
    assert.equal(await admit(a, limit), undefined);
    assert.ok(Date.now() - started < 50, 'no gateway holds unused leases: no wait before the 429');
    a.release(onA);
    assert.ok(await admit(b, limit), 'the slot a gave back is free at once');
  });

  test('a scope found full while blocks were out grants no blocks for a second', async () => {
    const a = await gateway('a');
    const b = await gateway('b');
    const limit = scope(64);
    const onA = (await admit(a, limit))!;
    const onB: ConcurrencyLease[] = [];
    // The last of these find the scope full while a keeps leases: a reclaim, and the pressure mark.
    for (let i = 0; i < 63; i++) onB.push((await admit(b, limit))!);
    for (const lease of onB) b.release(lease);
    a.release(onA);
    await waitFor(
      async () => (await shared.client.zcard(ConcurrencyKeys.unreserved)) === 0,
      500,
      'every lease back',
    );
    const single = await admit(a, limit);
    assert.ok(single);
    assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), 1, 'one lease, not a block');
    await sleep(1100);
    assert.ok(await admit(a, limit));
    assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), 1 + 4, 'a block of 4 again');
  });

  test('a block holder that never gives back (a dead gateway not yet expired): the call tries for ~60 ms, then 429', async () => {
    const leases = await gateway('a');
    const limit = scope(4);
    const [seconds] = await shared.client.time();
    const later = (Number(seconds) + 60) * 1000;
    await shared.client.zadd(HOLDERS, later, 'dead');
    // The scope full with the dead gateway's leases.
    await shared.client.zadd(
      ConcurrencyKeys.unreserved,
      ...[1, 2, 3, 4].flatMap((i) => [later, `dead/${i}`]),
    );
    const started = Date.now();
    assert.equal(await admit(leases, limit), undefined);
    const waited = Date.now() - started;
    assert.ok(waited >= 60 && waited < 1000, `waited ${waited} ms`);
  });

  test('the exact limit under a burst from both gateways at once', async () => {
    const a = await gateway('a');
    const b = await gateway('b');
    const limit = scope(64);
    // Both take blocks first, so the burst meets leases kept unused on the other side.
    const warm = [await admit(a, limit), await admit(b, limit)];
    for (const lease of warm) a.release(lease!);
    const outcomes = await Promise.all(Array.from({ length: 100 }, (_, i) => admit(i % 2 ? a : b, limit)));
    assert.equal(outcomes.filter(Boolean).length, 64);
    assert.equal(await shared.client.zcard(ConcurrencyKeys.unreserved), 64);
  });
});

describe('a gateway killed with -9 while it keeps a block', () => {
  let redis: RedisServer;
  let fixture: GatewayFixture;

  before(async () => {
    redis = await startRedis();
    fixture = new GatewayFixture(redis.url);
  });

  after(async () => {
    await fixture?.stop();
    await redis?.stop();
  });

  test('its unused leases and its block registration expire with its running calls', async () => {
    const route = await fixture.addFunction({ name: 'sleeper', source: SLEEPER });
    await fixture.addInstance(route);
    const env = { HEARTH_ACCOUNT_CONCURRENCY: '64', HEARTH_LEASE_TTL_MS: '1500' };
    const [doomed, survivor] = await Promise.all([fixture.startGateway(env), fixture.startGateway(env)]);
    const call = (url: string) =>
      fetch(`${url}/2015-03-31/functions/sleeper/invocations`, {
        method: 'POST',
        body: JSON.stringify({ ms: 0 }),
        headers: { authorization: `Bearer ${API_KEY}` },
      }).then((r) => r.status);
    assert.equal(await call(doomed.url), 200);
    assert.equal(
      await fixture.redis.zcard(ConcurrencyKeys.unreserved),
      4,
      'the block of 4, one lease back in it',
    );
    await doomed.process.stop('SIGKILL');
    assert.equal(await call(survivor.url), 200);
    await sleep(1500 + 500);
    // Expired entries are dropped by the next admission that reaches Redis; until then they count for nothing.
    const live = async (key: string) => {
      const [seconds, micros] = await fixture.redis.time();
      return fixture.redis.zrangebyscore(
        key,
        Number(seconds) * 1000 + Math.floor(Number(micros) / 1000),
        '+inf',
      );
    };
    // The survivor gave its idle block back itself; the dead gateway's could only expire.
    assert.deepEqual(await live(HOLDERS), []);
    assert.deepEqual(await live(ConcurrencyKeys.unreserved), []);
  });
});

async function scriptCalls(client: Redis): Promise<number> {
  const stats = await client.info('commandstats');
  return [...stats.matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
}
