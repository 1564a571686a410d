import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisKeys, type EventSourceMappingStatus } from '@hearth/api';
import { freePort, startProcess, startRedis, type RunningProcess } from '../harness/index.js';
import { API_KEY, GatewayFixture } from '../gateway/fixture.js';

const CONTROLLER_MAIN = fileURLToPath(import.meta.resolve('@hearth/controller/main'));

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
function manifests(recorderUrl: string): Record<string, string> {
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
    schedule: { expression: "rate(1 second)" }
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

async function startController(
  index: number,
  env: Record<string, string>,
): Promise<{ process: RunningProcess; metricsUrl: string }> {
  const metricsPort = await freePort();
  const process = await startProcess({
    name: `controller-${index}`,
    command: globalThis.process.execPath,
    args: [CONTROLLER_MAIN],
    env: {
      ...globalThis.process.env,
      HEARTH_BACKEND: 'process',
      HEARTH_METRICS_PORT: String(metricsPort),
      HEARTH_METRICS_HOST: '127.0.0.1',
      HEARTH_LOG_LEVEL: 'warn',
      HEARTH_ISOLATION: 'portable',
      ...env,
    },
    ready: { url: `http://127.0.0.1:${metricsPort}/healthz` },
    readyTimeoutMs: 60_000,
  });
  return { process, metricsUrl: `http://127.0.0.1:${metricsPort}/metrics` };
}

test('a rate(1 second) schedule run by two controllers invokes its function exactly once per tick', async (t) => {
  const redis = await startRedis();
  const fixture = new GatewayFixture(redis.url);
  const recorder = await startRecorder();
  const dir = await mkdtemp(join(tmpdir(), 'hearth-schedule-'));
  const controllers: RunningProcess[] = [];
  t.after(async () => {
    for (const controller of controllers) await controller.stop('SIGTERM', 5000);
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
  const [first, second] = await Promise.all([startController(1, env), startController(2, env)]);
  controllers.push(first!.process, second!.process);

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

  // Stop both, then let the last accepted invocations arrive before counting.
  await Promise.all(controllers.map((c) => c.stop('SIGTERM', 5000)));
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
