/**
 * The Redis Streams mapping benchmark: the whole pipeline (Redis -> consumer group -> stream
 * runner -> gateway -> shim -> Node handler), measured two ways:
 * - throughput: N records added up front, then the time until the handler has seen all of them
 *   (each call reports its record count to a recorder), batchSize 100;
 * - latency on an idle stream: one XADD at a time, the handler reports Date.now() minus the
 *   entry id's milliseconds (Redis's clock; same machine).
 * No peer is named for this path, so the numbers are set against the goals (20,000 records/s,
 * p50 under 50 ms) and against a floor measured in the same run: a bare XREADGROUP + XACK loop
 * over the same Redis, which is what any consumer of the stream pays at least.
 *
 * Usage: node bench/dist/index.js redis-stream-mapping [--records 50000] [--samples 200]
 *   [--factors 1,4] [--out results.md]
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { startRedis } from '@hearth/test';
import { API_KEY, GatewayFixture } from '@hearth/test/gateway/fixture';
import { startRecorder, testMapping, type Recorder } from '@hearth/test/event-sources/stream-fixture';
import { openRedisStreamSource } from '@hearth/controller/event-sources/redis-stream-source';
import { runStreamMapping } from '@hearth/controller/event-sources/stream-runner';
import { processCpuMicros } from './proc.js';

const GOAL_RECORDS_PER_SECOND = 20_000;
const GOAL_P50_MS = 50;
const BATCH_SIZE = 100;
/** Each record's data: about what a small JSON event weighs. */
const PAYLOAD = JSON.stringify({
  orderId: 'o-0000000000',
  amount: 1234,
  currency: 'EUR',
  note: 'x'.repeat(40),
});

/**
 * Reports each call's record count and how old its first record was. The report is not awaited:
 * it is how the benchmark observes the handler, not work the pipeline should be charged for
 * (Hearth's runtimes stay running between calls, so it still goes out). It goes out over a
 * kept-alive connection with node:http: fetch() cost the runtime more CPU than the event did,
 * on the same cores as the pipeline.
 */
const HANDLER = `
import { Agent, request } from 'node:http';
const agent = new Agent({ keepAlive: true });
export const handler = async (event) => {
  const now = Date.now();
  const report = { count: event.Records.length, latencyMs: now - event.Records[0].kinesis.approximateArrivalTimestamp * 1000 };
  request(process.env.RECORDER, { method: 'POST', agent }, (response) => response.resume())
    .on('error', (error) => console.error('could not report to the recorder', error))
    .end(JSON.stringify(report));
  return null;
};
`;

interface Row {
  label: string;
  recordsPerSecond?: number;
  p50Ms?: number;
  p99Ms?: number;
  /** CPU µs per record while the records flowed, by process: steadier than the rate on a busy machine. */
  cpu?: CpuPerRecord;
}

/** The processes of the pipeline whose CPU is counted. */
interface PipelinePids {
  gateway: number;
  shim: number;
  redis: number;
}

type CpuPerRecord = Record<'runner' | 'gateway' | 'shim' | 'runtimes' | 'redis', number>;

/** CPU time (µs) a process has used so far; 0 when it is gone. */
const cpuMicros = (pid: number) => processCpuMicros(pid) ?? 0;

/** The shim's runtimes: its child processes. */
function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** CPU used so far by each part of the pipeline, in µs; `runner` is this process (runner and recorder). */
function pipelineCpu(pids: PipelinePids): CpuPerRecord {
  const ownUsage = process.cpuUsage();
  return {
    runner: ownUsage.user + ownUsage.system,
    gateway: cpuMicros(pids.gateway),
    shim: cpuMicros(pids.shim),
    runtimes: childPids(pids.shim).reduce((sum, pid) => sum + cpuMicros(pid), 0),
    redis: cpuMicros(pids.redis),
  };
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

/** Adds `count` entries in pipelined chunks; `partitions` keys round robin (none: the stream is one partition). */
async function fill(redis: Redis, stream: string, count: number, partitions: number): Promise<void> {
  for (let start = 0; start < count; start += 1000) {
    const pipeline = redis.pipeline();
    for (let i = start; i < Math.min(count, start + 1000); i++) {
      if (partitions > 1)
        pipeline.xadd(stream, '*', 'partitionKey', `key-${i % partitions}`, 'data', PAYLOAD);
      else pipeline.xadd(stream, '*', 'data', PAYLOAD);
    }
    await pipeline.exec();
  }
}

const cpuTotal = (cpu: CpuPerRecord) => Object.values(cpu).reduce((sum, micros) => sum + micros, 0);

const handled = (recorder: Recorder) =>
  recorder.reports.reduce((sum, report) => sum + (report as unknown as { count: number }).count, 0);

async function mappingThroughput(
  options: {
    redisUrl: string;
    redis: Redis;
    gatewayUrl: string;
    stream: string;
    records: number;
    factor: number;
    pids: PipelinePids;
  },
  recorder: Recorder,
): Promise<{ recordsPerSecond: number; cpu: CpuPerRecord }> {
  const { stream } = options;
  // Enough keys that every lane gets some.
  await fill(options.redis, stream, options.records, options.factor > 1 ? options.factor * 4 : 1);
  recorder.reports.length = 0;
  const mapping = testMapping({
    name: stream,
    spec: {
      functionName: 'bench-consumer',
      source: { redisStream: { stream } },
      startingPosition: 'TRIM_HORIZON',
      batchSize: BATCH_SIZE,
      parallelizationFactor: options.factor,
    },
    gatewayUrl: options.gatewayUrl,
    token: API_KEY,
    redisUrl: options.redisUrl,
    redis: options.redis,
  });
  const started = performance.now();
  const cpuBefore = pipelineCpu(options.pids);
  const source = await openRedisStreamSource({
    redisUrl: options.redisUrl,
    stream,
    group: 'bench',
    consumer: 'bench-1',
    position: mapping.spec,
  });
  const runner = runStreamMapping(mapping.ctx, source);
  try {
    await recorder.waitFor(
      (_) => handled(recorder) >= options.records,
      300_000,
      `${options.records} records handled`,
    );
    const recordsPerSecond = options.records / ((performance.now() - started) / 1000);
    const cpuAfter = pipelineCpu(options.pids);
    const cpu = Object.fromEntries(
      Object.entries(cpuAfter).map(([part, micros]) => [
        part,
        (micros - cpuBefore[part as keyof CpuPerRecord]) / options.records,
      ]),
    ) as CpuPerRecord;
    return { recordsPerSecond, cpu };
  } finally {
    await runner.stop();
    await mapping.close();
  }
}

async function mappingLatency(
  options: { redisUrl: string; redis: Redis; gatewayUrl: string; samples: number },
  recorder: Recorder,
): Promise<number[]> {
  const stream = 'bench-latency';
  const mapping = testMapping({
    name: stream,
    spec: { functionName: 'bench-consumer', source: { redisStream: { stream } }, batchSize: BATCH_SIZE },
    gatewayUrl: options.gatewayUrl,
    token: API_KEY,
    redisUrl: options.redisUrl,
    redis: options.redis,
  });
  const source = await openRedisStreamSource({
    redisUrl: options.redisUrl,
    stream,
    group: 'bench',
    consumer: 'bench-1',
    position: mapping.spec,
  });
  const runner = runStreamMapping(mapping.ctx, source);
  try {
    const latencies: number[] = [];
    for (let i = 0; i < options.samples; i++) {
      recorder.reports.length = 0;
      await options.redis.xadd(stream, '*', 'data', PAYLOAD);
      await recorder.waitFor((reports) => reports.length > 0, 10_000, 'the record handled');
      latencies.push((recorder.reports[0] as unknown as { latencyMs: number }).latencyMs);
      // Idle between records, so that each one finds the mapping waiting.
      await sleep(20);
    }
    return latencies.sort((a, b) => a - b);
  } finally {
    await runner.stop();
    await mapping.close();
  }
}

/** The floor: a consumer group read 100 at a time and acknowledged, nothing else. */
async function floorThroughput(redisUrl: string, redis: Redis, records: number): Promise<number> {
  const stream = 'bench-floor';
  await fill(redis, stream, records, 1);
  await redis.xgroup('CREATE', stream, 'bench', '0');
  const reader = new Redis(redisUrl, { protocol: 2 });
  try {
    const started = performance.now();
    for (let done = 0; done < records;) {
      const reply = (await reader.xreadgroup(
        'GROUP',
        'bench',
        'floor',
        'COUNT',
        BATCH_SIZE,
        'STREAMS',
        stream,
        '>',
      )) as [string, [string, string[]][]][] | null;
      const ids = reply?.[0]?.[1].map(([id]) => id) ?? [];
      if (ids.length > 0) await reader.xack(stream, 'bench', ...ids);
      done += ids.length;
    }
    return records / ((performance.now() - started) / 1000);
  } finally {
    reader.disconnect();
  }
}

async function floorLatency(redisUrl: string, redis: Redis, samples: number): Promise<number[]> {
  const stream = 'bench-floor-latency';
  await redis.xgroup('CREATE', stream, 'bench', '$', 'MKSTREAM');
  const reader = new Redis(redisUrl, { protocol: 2 });
  try {
    const latencies: number[] = [];
    for (let i = 0; i < samples; i++) {
      const read = reader.xreadgroup(
        'GROUP',
        'bench',
        'floor',
        'COUNT',
        BATCH_SIZE,
        'BLOCK',
        5000,
        'STREAMS',
        stream,
        '>',
      );
      // The read must be waiting before the entry is added.
      await sleep(5);
      await redis.xadd(stream, '*', 'data', PAYLOAD);
      const reply = (await read) as [string, [string, string[]][]][] | null;
      const now = Date.now();
      const [id] = reply![0]![1][0]!;
      latencies.push(now - Number(id.split('-')[0]));
      await reader.xack(stream, 'bench', id);
      await sleep(15);
    }
    return latencies.sort((a, b) => a - b);
  } finally {
    reader.disconnect();
  }
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      records: { type: 'string', default: '50000' },
      samples: { type: 'string', default: '200' },
      factors: { type: 'string', default: '1,4' },
      out: { type: 'string' },
    },
  });
  const records = Number(values.records);
  const samples = Number(values.samples);
  const factors = values.factors.split(',').map(Number);
  const redisServer = await startRedis();
  const fixture = new GatewayFixture(redisServer.url);
  const recorder = await startRecorder();
  const redis = new Redis(redisServer.url);
  try {
    const gateway = await fixture.startGateway();
    const route = await fixture.addFunction({
      name: 'bench-consumer',
      source: HANDLER,
      spec: {
        env: [{ name: 'RECORDER', value: recorder.url }],
        concurrency: { perInstance: Math.max(...factors) },
      },
    });
    const instance = await fixture.addInstance(route);
    const common = { redisUrl: redisServer.url, redis, gatewayUrl: gateway.url };
    const pids = { gateway: gateway.process.pid, shim: instance.process.pid, redis: redisServer.process.pid };

    const rows: Row[] = [];
    for (const factor of factors) {
      // A short warm-up: the runtime's first calls compile the handler's code paths.
      await mappingThroughput(
        { ...common, stream: `bench-warmup-${factor}`, records: 2000, factor, pids },
        recorder,
      );
      const { recordsPerSecond, cpu } = await mappingThroughput(
        { ...common, stream: `bench-throughput-${factor}`, records, factor, pids },
        recorder,
      );
      console.error(
        `  mapping, parallelizationFactor ${factor}: ${recordsPerSecond.toFixed(0)} records/s, ` +
          `${cpuTotal(cpu).toFixed(0)} CPU µs/record`,
      );
      rows.push({ label: `Hearth mapping, parallelizationFactor ${factor}`, recordsPerSecond, cpu });
    }
    const latencies = await mappingLatency({ ...common, samples }, recorder);
    console.error(`  mapping latency p50 ${percentile(latencies, 0.5)} ms`);
    rows.push({
      label: 'Hearth mapping, idle stream',
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
    });
    const floorRate = await floorThroughput(redisServer.url, redis, records);
    const floorLatencies = await floorLatency(redisServer.url, redis, samples);
    rows.push({
      label: 'bare XREADGROUP + XACK loop (floor)',
      recordsPerSecond: floorRate,
      p50Ms: percentile(floorLatencies, 0.5),
      p99Ms: percentile(floorLatencies, 0.99),
    });

    const cpus = execFileSync('nproc', { encoding: 'utf8' }).trim();
    const cell = (value: number | undefined, digits: number) =>
      value === undefined ? '-' : value.toFixed(digits);
    const best = Math.max(
      ...rows
        .filter((r) => r.label.startsWith('Hearth') && r.recordsPerSecond)
        .map((r) => r.recordsPerSecond!),
    );
    const p50 = percentile(latencies, 0.5);
    const lines = [
      `### Redis Streams mapping: ${records} records, batchSize ${BATCH_SIZE}, ${samples} latency samples (entry id ms resolution), ${cpus} CPUs, Node ${process.version}`,
      '',
      '| path | records/s | p50 ms | p99 ms |',
      '| --- | ---: | ---: | ---: |',
      ...rows.map(
        (r) => `| ${r.label} | ${cell(r.recordsPerSecond, 0)} | ${cell(r.p50Ms, 0)} | ${cell(r.p99Ms, 0)} |`,
      ),
      '',
      'CPU µs per record while the records flowed, by process (the benchmark process holds the runner and the recorder):',
      '',
      '| path | total | runner | gateway | shim | runtimes | redis |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows.flatMap(({ label, cpu }) =>
        cpu
          ? [
              `| ${label} | ${cpuTotal(cpu).toFixed(0)} | ${cpu.runner.toFixed(0)} | ${cpu.gateway.toFixed(0)} | ` +
                `${cpu.shim.toFixed(0)} | ${cpu.runtimes.toFixed(0)} | ${cpu.redis.toFixed(0)} |`,
            ]
          : [],
      ),
      '',
      `- throughput: best ${best.toFixed(0)} records/s against the goal of ${GOAL_RECORDS_PER_SECOND}: ` +
        `${(best / GOAL_RECORDS_PER_SECOND).toFixed(2)}x the goal (${best >= GOAL_RECORDS_PER_SECOND ? 'met' : '**missed**'}); ` +
        `${((100 * best) / floorRate).toFixed(0)}% of the floor`,
      `- latency: p50 ${p50} ms against the goal of < ${GOAL_P50_MS} ms: ` +
        `${(p50 / GOAL_P50_MS).toFixed(2)}x the budget (${p50 < GOAL_P50_MS ? 'met' : '**missed**'}); floor p50 ${percentile(floorLatencies, 0.5)} ms`,
    ];
    const table = lines.join('\n');
    console.log(table);
    if (values.out) await writeFile(values.out, `${table}\n`);
  } finally {
    redis.disconnect();
    await recorder.close();
    await fixture.stop();
    await redisServer.stop();
  }
}
