import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisKeys, type FunctionRoute } from '@hearth/api';
import { RegistryWriter } from '@hearth/controller/registry';
import { useRedis } from '../harness/index.js';

const shared = useRedis();

test("a deleted function's sweep time counts from its deletion; a function of its name back drops it", async () => {
  const redis = shared.client;
  const registry = new RegistryWriter(redis);
  const route = { name: 'retired', state: 'Active' } as unknown as FunctionRoute;
  await registry.putRoute(route);
  await registry.retireFunction('retired', 1_000);
  // A resync or another controller retires it again later: the first time stays.
  await registry.retireFunction('retired', 5_000);
  assert.equal(await redis.zscore(RedisKeys.deleted, 'retired'), '1000');
  assert.equal(await redis.exists(RedisKeys.function('retired')), 0);

  await registry.putRoute(route);
  assert.equal(await redis.zscore(RedisKeys.deleted, 'retired'), null);
  await registry.retireFunction('retired', 9_000);
  assert.equal(await redis.zscore(RedisKeys.deleted, 'retired'), '9000', 'deleted again: a new time');
});
