import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { RedisKeys, type EventSourceMappingResource, type PushMapping } from '@hearth/api';
import { EventSourceMetrics } from '@hearth/controller/event-sources/metrics';
import { startKubeController, type KubeController } from '@hearth/controller/kube-backend';
import { KUBE_MISSING, kubeBinaries, startControlPlane, type ControlPlane } from '../harness/kube.js';
import { startRedis, type RedisServer } from '../harness/redis.js';
import { API_KEY, GatewayFixture } from '../gateway/fixture.js';

const crd = (file: string) => fileURLToPath(new URL(`../../../charts/hearth/crds/${file}`, import.meta.url));
const quiet = pino({ level: process.env.HEARTH_TEST_LOGS === '1' ? 'debug' : 'silent' });

const mapping = (name: string, spec: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: 'hearth.dev/v1alpha1', kind: 'EventSourceMapping', metadata: { name }, spec });

describe(
  'EventSourceMappings on Kubernetes, run by the leader only',
  { skip: kubeBinaries() ? false : KUBE_MISSING },
  () => {
    let cp: ControlPlane;
    let redis: RedisServer;
    let fixture: GatewayFixture;
    let controller: KubeController;
    let follower: KubeController;
    const leaderMetrics = new EventSourceMetrics(new Registry());
    const followerMetrics = new EventSourceMetrics(new Registry());

    before(async () => {
      redis = await startRedis();
      fixture = new GatewayFixture(redis.url);
      cp = await startControlPlane({ crds: [crd('function.yaml'), crd('eventsourcemapping.yaml')] });
      // The gateway learns Functions from the registry the controller writes; async calls are
      // accepted (202) without an instance, which is all a schedule waits for.
      const gateway = await fixture.startGateway();
      const kubeConfig = new KubeConfig();
      kubeConfig.loadFromFile(cp.kubeconfig);
      const replica = (identity: string, metrics: EventSourceMetrics) =>
        startKubeController({
          kubeConfig,
          logger: quiet,
          leaseSeconds: 5,
          identity,
          redisUrl: redis.url,
          eventSources: { gatewayUrl: gateway.url, gatewayToken: API_KEY, metrics },
          mappingResyncMs: 1000,
        });
      controller = await replica('mapping-leader', leaderMetrics);
      while (!controller.isLeader()) await sleep(50);
      follower = await replica('mapping-follower', followerMetrics);
    });
    after(async () => {
      await follower?.stop();
      await controller?.stop();
      await fixture?.stop();
      await cp?.stop();
      await redis?.stop();
    });

    const esm = async (name: string) =>
      JSON.parse(await cp.kubectl(['get', 'esm', name, '-o', 'json'])) as EventSourceMappingResource;

    async function until<T>(what: string, check: () => Promise<T | undefined | false>): Promise<T> {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const value = await check().catch(() => undefined);
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(200);
      }
    }

    test('a schedule invokes its function through the gateway; its status is on the resource', async () => {
      await cp.kubectl(
        ['apply', '-f', '-'],
        JSON.stringify({
          apiVersion: 'hearth.dev/v1alpha1',
          kind: 'Function',
          metadata: { name: 'ticker' },
          spec: {
            runtime: 'nodejs20.x',
            code: { inline: { files: { 'index.mjs': 'export const handler = async (e) => e' } } },
          },
        }),
      );
      await cp.kubectl(
        ['apply', '-f', '-'],
        mapping('every-second', {
          functionName: 'ticker',
          source: { schedule: { expression: 'rate(1 second)' } },
        }),
      );
      const status = await until('a tick processed', async () => {
        const s = (await esm('every-second')).status;
        return s?.lastProcessingResult === 'OK' && s;
      });
      assert.equal(status.state, 'Enabled');
      assert.equal(status.observedGeneration, 1);
      assert.match(status.lastProcessedPosition ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.equal(status.stateReason, undefined);
      // Only the leader runs mappings: the other replica never invoked anything.
      const invoked = async (metrics: EventSourceMetrics) =>
        (await metrics.invocations.get()).values.reduce((sum, v) => sum + v.value, 0);
      await until('four ticks invoked', async () => (await invoked(leaderMetrics)) >= 4);
      assert.equal(await invoked(followerMetrics), 0);
      assert.equal(follower.isLeader(), false);

      await cp.kubectl(['patch', 'esm', 'every-second', '--type=merge', '-p', '{"spec":{"enabled":false}}']);
      const disabled = await until('disabled', async () => {
        const s = (await esm('every-second')).status;
        return s?.state === 'Disabled' && s;
      });
      assert.equal(disabled.observedGeneration, 2);
    });

    test('a mapping to a missing function runs and says so; a bad schedule is Failed naming the field', async () => {
      await cp.kubectl(
        ['apply', '-f', '-'],
        mapping('orphan', { functionName: 'ghost', source: { schedule: { expression: 'rate(1 hour)' } } }),
      );
      await cp.kubectl(
        ['apply', '-f', '-'],
        mapping('noon', {
          functionName: 'ticker',
          source: { schedule: { expression: 'cron(0 12 * * * *)' } },
        }),
      );
      const orphan = await until('orphan status', async () => (await esm('orphan')).status?.stateReason);
      assert.match(orphan, /function ghost does not exist/);
      assert.equal((await esm('orphan')).status?.state, 'Enabled');
      const noon = await until('noon status', async () => (await esm('noon')).status?.stateReason);
      assert.match(noon, /^spec\.source\.schedule\.expression .*\? in exactly one/);
      assert.equal((await esm('noon')).status?.state, 'Failed');
    });

    test('HTTP mappings are published for the gateways, and unpublished when deleted', async () => {
      await cp.kubectl(
        ['apply', '-f', '-'],
        mapping('orders-api', { functionName: 'ticker', source: { http: { pathPrefix: '/orders' } } }),
      );
      const published = await until('published', async () => {
        const json = await fixture.redis.hget(RedisKeys.pushMappings, 'orders-api');
        return json && (JSON.parse(json) as PushMapping);
      });
      assert.deepEqual(published, {
        name: 'orders-api',
        namespace: 'default',
        functionName: 'ticker',
        enabled: true,
        http: { method: 'ANY', pathPrefix: '/orders', auth: 'gateway' },
      });
      await cp.kubectl(['delete', 'esm', 'orders-api']);
      await until(
        'unpublished',
        async () => (await fixture.redis.hget(RedisKeys.pushMappings, 'orders-api')) === null,
      );
    });
  },
);
