/**
 * The event source lease against a real Redis: one holder at a time, taken over on expiry, on
 * release, or at once from a dead process of this host; a holder that loses it is told.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { EVENT_SOURCE_LEASE_KEY, RedisLease, holderIsGone } from '@hearth/controller/event-sources/lease';
import { startRedis } from '../harness/index.js';

const logger = pino({ level: process.env.HEARTH_TEST_LOGS === '1' ? 'debug' : 'silent' });

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A pid that surely names no process: one that existed and exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid!;
}

test('one holder at a time: the other takes over when it stops renewing, when it releases, or at once when its process is gone', async (t) => {
  const server = await startRedis();
  const redis = new Redis(server.url);
  // The end of the test stops Redis under it; its failed commands are what is tested.
  redis.on('error', () => undefined);
  t.after(async () => {
    redis.disconnect();
    await server.stop();
  });
  const events: string[] = [];
  const lease = (name: string, holder: string) =>
    new RedisLease({
      redis,
      holder,
      ttlMs: 600,
      renewMs: 100,
      logger,
      onAcquired: () => events.push(`${name} acquired`),
      onLost: () => events.push(`${name} lost`),
    });
  // Holders "on another host": only the expiry tells that they are gone.
  const a = lease('a', 'elsewhere-a:1:aa');
  const b = lease('b', 'elsewhere-b:1:bb');
  a.start();
  await until(() => a.isHeld, 'a to take the lease');
  b.start();
  await sleep(1500); // more than twice the expiry: a renews, b waits
  assert.deepEqual(events, ['a acquired']);
  assert.equal(await redis.get(EVENT_SOURCE_LEASE_KEY), 'elsewhere-a:1:aa');

  // a dies without releasing: b takes over once the lease expired.
  await a.stop();
  const stoppedAt = Date.now();
  await until(() => b.isHeld, 'b to take the expired lease');
  assert.ok(Date.now() - stoppedAt >= 300, 'not before the lease could have expired');
  assert.deepEqual(events, ['a acquired', 'b acquired']);

  // Someone else takes the key (b stalled past the expiry): b is told, and stops holding it.
  await redis.set(EVENT_SOURCE_LEASE_KEY, 'elsewhere-c:1:cc', 'PX', 600);
  await until(() => events.includes('b lost'), 'b to notice');
  assert.equal(b.isHeld, false);

  // A release hands over at the next try.
  const c = lease('c', 'elsewhere-c:1:cc2');
  await until(() => b.isHeld, 'b to take it back after the expiry');
  c.start();
  await b.release();
  await b.stop();
  await until(() => c.isHeld, 'c to take the released lease', 2000);
  await c.stop();
  await c.release();
  assert.equal(await redis.get(EVENT_SOURCE_LEASE_KEY), null);

  // A holder of this host whose process is gone: taken at once, not after its (long) expiry.
  const dead = `${hostname()}:${await deadPid()}:dd`;
  assert.ok(holderIsGone(dead));
  assert.equal(holderIsGone(`${hostname()}:${process.pid}:ee`), false, 'this process is alive');
  assert.equal(holderIsGone('elsewhere:1:ff'), false, 'a process of another host is not judged');
  await redis.set(EVENT_SOURCE_LEASE_KEY, dead, 'PX', 600_000);
  const d = lease('d', `${hostname()}:${process.pid}:d`);
  d.start();
  t.after(() => d.stop());
  await until(() => d.isHeld, 'd to take the dead holder’s lease', 2000);

  // Redis gone: the holder cannot renew, and stops before the lease could expire and be taken.
  const lostBefore = events.filter((e) => e === 'd lost').length;
  const stoppedRedisAt = Date.now();
  await server.stop();
  await until(() => events.filter((e) => e === 'd lost').length > lostBefore, 'd to give up the lease', 5000);
  assert.equal(d.isHeld, false);
  assert.ok(Date.now() - stoppedRedisAt >= 300, 'not while the lease was surely still its own');
});
