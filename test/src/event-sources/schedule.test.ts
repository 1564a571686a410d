import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisKeys, type EventSourceMappingStatus } from '@hearth/api';
import { tickRequestId } from '@hearth/controller/event-sources/schedule';
import { stableUid } from '@hearth/controller/event-sources/supervisor';
import { startRedis } from '../harness/index.js';
import { API_KEY, GatewayFixture } from '../gateway/fixture.js';
import { leaseHolder, startController, type ControllerProcess } from './controller-process.js';

/** An HTTP server that keeps every JSON body POSTed to it. */
async function startRecorder(): Promise<{ url: string; events: Record<string, unknown>[]; server: Server }> {
  const events: Record<string, unknown>[] = [];
  const server = createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      events.push(JSON.parse(body) as Record<string, unknown>);
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, events, server };
}

/** A Function that reports each event it gets to the recorder, and schedules invoking it. */
function manifests(recorderUrl: string, expression = 'rate(1 second)'): Record<string, string> {
  const code = `export const handler = async (event) => {
    await fetch(process.env.RECORDER_URL, { method: 'POST', body: JSON.stringify(event) });
    return 'recorded';
  };`;
  return {
    'ticker.json': JSON.stringify({
      apiVersion: 'hearth.dev/v1alpha1',
      kind: 'Function',
      metadata: { name: 'ticker' },
      spec: {
        runtime: 'nodejs20.x',
        code: { inline: { files: { 'index.mjs': code } } },
        env: [{ name: 'RECORDER_URL', value: recorderUrl }],
        timeoutSeconds: 30,
        scaling: { minWarm: 1 },
      },
    }),
    'every-second.yaml': `
apiVersion: hearth.dev/v1alpha1
kind: EventSourceMapping
metadata: { name: every-second }
spec:
  functionName: ticker
  source:
    schedule: { expression: "${expression}" }
`,
    'broken.yaml': `
apiVersion: hearth.dev/v1alpha1
kind: EventSourceMapping
metadata: { name: broken-noon }
spec:
  functionName: ticker
  source:
    schedule: { expression: "cron(0 12 * * * *)", timezone: Europe/Paris }
`,
  };
}

test('a rate(1 second) schedule run by two controllers invokes its function exactly once per tick', async (t) => {
  const redis = await startRedis();
  const fixture = new GatewayFixture(redis.url);
  const recorder = await startRecorder();
  const dir = await mkdtemp(join(tmpdir(), 'hearth-schedule-'));
  const controllers: ControllerProcess[] = [];
  t.after(async () => {
    for (const controller of controllers) await controller.process.stop('SIGTERM', 5000);
    await fixture.stop();
    recorder.server.closeAllConnections();
    recorder.server.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });
  for (const [file, text] of Object.entries(manifests(recorder.url))) await writeFile(join(dir, file), text);
  const gateway = await fixture.startGateway();
  const env = {
    HEARTH_REDIS_URL: redis.url,
    HEARTH_FUNCTIONS_DIR: dir,
    HEARTH_GATEWAY_URL: gateway.url,
    HEARTH_GATEWAY_TOKEN: API_KEY,
  };
  const [first, second] = await Promise.all([
    startController('controller-1', env),
    startController('controller-2', env),
  ]);
  controllers.push(first!, second!);

  const times = () => recorder.events.map((e) => Date.parse(e.time as string)).sort((a, b) => a - b);
  const spanMs = () => (times().length ? times().at(-1)! - times()[0]! : 0);
  const deadline = Date.now() + 60_000;
  while (spanMs() < 6000 && Date.now() < deadline) await sleep(200);
  assert.ok(spanMs() >= 6000, `ticks arrived for 6 s within a minute (got ${recorder.events.length})`);

  // Status and metrics as a user would look at them, while both controllers run.
  const statuses = Object.fromEntries(
    Object.entries(await fixture.redis.hgetall(RedisKeys.mappingStatus)).map(([name, json]) => [
      name,
      JSON.parse(json) as EventSourceMappingStatus,
    ]),
  );
  assert.equal(statuses['every-second']?.state, 'Enabled');
  assert.match(statuses['every-second']?.lastProcessedPosition ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(statuses['every-second']?.lastProcessingResult, 'OK');
  assert.equal(statuses['broken-noon']?.state, 'Failed');
  assert.match(
    statuses['broken-noon']?.stateReason ?? '',
    /spec\.source\.schedule\.expression .*\? in exactly one/,
  );
  let invoked = 0;
  for (const { metricsUrl } of [first!, second!]) {
    const text = await (await fetch(metricsUrl)).text();
    assert.match(text, /^hearth_controller_process_cpu_seconds_total /m);
    for (const match of text.matchAll(
      /^hearth_event_source_invocations_total\{[^}]*mapping="every-second"[^}]*outcome="success"[^}]*\} (\d+)$/gm,
    )) {
      invoked += Number(match[1]);
    }
  }
  assert.ok(invoked >= recorder.events.length, `controllers counted ${invoked} invocations`);

  // Exactly once per tick with two controllers running, not one left after the other died.
  assert.ok(first!.alive() && second!.alive(), 'both controllers ran throughout');
  // Stop both, then let the last accepted invocations arrive before counting.
  await Promise.all(controllers.map((c) => c.process.stop('SIGTERM', 5000)));
  await sleep(1500);
  const all = times();
  const duplicates = all.filter((time, i) => all[i - 1] === time);
  assert.deepEqual(
    duplicates.map((ms) => new Date(ms).toISOString()),
    [],
    'no tick was invoked twice',
  );
  const gaps = all.slice(1).filter((time, i) => time - all[i]! !== 1000);
  assert.deepEqual(
    gaps.map((ms) => new Date(ms).toISOString()),
    [],
    'no tick was missed between the first and the last',
  );
  const event = recorder.events[0]!;
  assert.equal(event['detail-type'], 'Scheduled Event');
  assert.equal(event.source, 'aws.events');
  assert.deepEqual(event.resources, ['arn:aws:events:us-east-1:000000000000:rule/every-second']);
  assert.deepEqual(event.detail, {});
});

/**
 * Stands between a controller and the gateway: forwards each call, then never answers it, as if
 * the controller died after the gateway took the event and before it heard the 202.
 */
async function startSwallowingProxy(
  gatewayUrl: string,
): Promise<{ url: string; forwarded: string[]; server: Server }> {
  const forwarded: string[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      void (async () => {
        const headers: Record<string, string> = {};
        for (const name of [
          'authorization',
          'content-type',
          'x-amz-invocation-type',
          'x-hearth-request-id',
        ]) {
          const value = request.headers[name];
          if (typeof value === 'string') headers[name] = value;
        }
        const answer = await fetch(gatewayUrl + request.url, {
          method: 'POST',
          headers,
          body: Buffer.concat(chunks),
        });
        await answer.arrayBuffer();
        forwarded.push(`${answer.status} ${headers['x-hearth-request-id']}`);
        // The answer never reaches the controller.
        void response;
      })();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, forwarded, server };
}

test('a tick whose controller dies after the gateway took it, before the answer, is sent again by the other and runs once', async (t) => {
  const redis = await startRedis();
  const fixture = new GatewayFixture(redis.url);
  const recorder = await startRecorder();
  const dir = await mkdtemp(join(tmpdir(), 'hearth-schedule-'));
  const controllers: ControllerProcess[] = [];
  t.after(async () => {
    for (const controller of controllers) await controller.process.stop('SIGTERM', 5000);
    await fixture.stop();
    recorder.server.closeAllConnections();
    recorder.server.close();
    await redis.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const files = manifests(recorder.url, 'rate(2 seconds)');
  for (const file of ['ticker.json', 'every-second.yaml']) await writeFile(join(dir, file), files[file]!);
  const gateway = await fixture.startGateway();
  const proxy = await startSwallowingProxy(gateway.url);
  t.after(() => {
    proxy.server.closeAllConnections();
    proxy.server.close();
  });
  const env = { HEARTH_REDIS_URL: redis.url, HEARTH_FUNCTIONS_DIR: dir, HEARTH_GATEWAY_TOKEN: API_KEY };

  // The first controller runs the schedule (it holds the lease) and sends through the proxy.
  const dying = await startController('dying', { ...env, HEARTH_GATEWAY_URL: proxy.url });
  controllers.push(dying);
  assert.equal(await leaseHolder(fixture.redis, [dying]), dying);
  const survivor = await startController('survivor', { ...env, HEARTH_GATEWAY_URL: gateway.url });
  controllers.push(survivor);

  // The gateway took a tick and the function ran it; the controller never heard so. Kill it now.
  const deadline = Date.now() + 60_000;
  while (recorder.events.length === 0 && Date.now() < deadline) await sleep(50);
  assert.ok(
    recorder.events.length > 0,
    `no tick ran within a minute; forwarded: ${proxy.forwarded.join(', ')}`,
  );
  await dying.process.stop('SIGKILL');
  const firstTick = Date.parse(recorder.events[0]!.time as string);
  const claim = await fixture.redis.get(RedisKeys.scheduleTick('every-second', firstTick));
  assert.match(claim ?? '', /^sending:/, 'the dead controller claimed the tick and never finished it');
  // That tick's own call (an earlier one can meet a gateway that has not seen the function yet).
  const firstTickId = tickRequestId(stableUid('default/every-second'), firstTick);
  assert.ok(
    proxy.forwarded.includes(`202 ${firstTickId}`),
    `the gateway took the tick: ${proxy.forwarded.join(', ')}`,
  );

  // The survivor takes over, sends that tick again (and those the takeover missed), then ticks on.
  const times = () => recorder.events.map((e) => Date.parse(e.time as string)).sort((a, b) => a - b);
  while (times().at(-1)! < firstTick + 8000 && Date.now() < deadline + 30_000) await sleep(100);
  assert.ok(times().at(-1)! >= firstTick + 8000, `the survivor did not tick on: ${times().join(',')}`);
  assert.equal(
    await fixture.redis.get(RedisKeys.scheduleTick('every-second', firstTick)),
    `done:${hostname()}:${survivor.process.pid}`,
    'the survivor sent the tick again',
  );
  assert.ok(survivor.alive());
  await survivor.process.stop('SIGTERM', 5000);
  await sleep(1500);

  const all = times();
  assert.deepEqual(
    all.filter((time, i) => all[i - 1] === time).map((ms) => new Date(ms).toISOString()),
    [],
    'no tick ran twice',
  );
  assert.deepEqual(
    all
      .slice(1)
      .filter((time, i) => time - all[i]! !== 2000)
      .map((ms) => new Date(ms).toISOString()),
    [],
    'no tick was lost in the takeover',
  );
  const first = recorder.events.find((e) => Date.parse(e.time as string) === firstTick)!;
  assert.equal(first.id, firstTickId);
});
