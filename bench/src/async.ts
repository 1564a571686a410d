/**
 * The async benchmark: `X-Amz-Invocation-Type: Event` invokes of a no-op function through a real
 * gateway, a real Redis and real runtime shims registered as the controller would register them,
 * with the gateway in each of two topologies: one process taking calls and running events (as
 * `hearth dev` runs it), and the Helm chart's HTTP process beside a worker process.
 *
 * - 202 latency: wrk sends Event invokes at 1 and 64 callers as fast as they can (saturation),
 *   then paced at the goal's rate (2,000 a second, 64 callers on one schedule: the latency at that
 *   load); the events run meanwhile, as they would in production.
 * - End to end: N events sent as fast as 64 callers can, timed from the first send until the
 *   workers have run every accepted one (the gateway's own counters, read from /metrics).
 *
 * Side by side in the same run: a bare BullMQ queue and a no-op BullMQ worker on the same Redis
 * (the floor of any BullMQ-based async path: `queue.add` latency and jobs/s with nothing else
 * around them), and the sync path's throughput through the same gateway (what a worker does for
 * every event). Goals: at least 2,000 events/s end to end, 202 p99 under 10 ms.
 *
 * Usage: node bench/dist/index.js async [--events 20000] [--rounds 3] [--callers 1,64] [--duration 5]
 *   [--warmup 2] [--paced-rate 2000] [--async-concurrency 10] [--shim-concurrency 4] [--instances 1]
 *   [--rows latency,end-to-end,sync,floor] [--topology one-process,split] [--cpu-prof dir] [--gateway-main path] [--out results.md]
 *
 * `--rows` runs only some rows (profiling one load); `--cpu-prof dir` runs the gateway under
 * `node --cpu-prof` and leaves the profile in `dir` when it stops; `--gateway-main` measures
 * another build of the gateway (an older commit's `gateway/dist/main.js`), for before/after runs.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { startRedis } from '@hearth/test';
import { repoRoot } from '@hearth/test/conformance/peers';
import { GatewayFixture, type RunningGateway } from '@hearth/test/gateway/fixture';
import { positiveInteger } from './options.js';
import { processCpuMicros } from './proc.js';

const benchDir = join(repoRoot, 'bench');
const durationScript = join(benchDir, 'wrk', 'post-json.lua');
const countScript = join(benchDir, 'wrk', 'post-json-count.lua');
const pacedScript = join(benchDir, 'wrk', 'post-json-paced.lua');
const FUNCTION = 'noop';
const NOOP_SOURCE = readFileSync(join(benchDir, 'fixtures', 'noop', 'index.mjs'), 'utf8');
const EVENT_HEADER = 'X-Amz-Invocation-Type: Event';
/** The longest an end-to-end run may take before it is reported as unfinished. */
const END_TO_END_LIMIT_MS = 180_000;

const GOAL_EVENTS_PER_SECOND = 2000;
const GOAL_202_P99_MS = 10;

interface Options {
  events: number;
  callers: number[];
  durationSeconds: number;
  warmupSeconds: number;
  /** Event invokes a second of the paced latency row (0: no such row). */
  pacedRate: number;
  /** End-to-end runs per topology (and of the floor); a row is the median run. */
  rounds: number;
  asyncConcurrency: number;
  shimConcurrency: number;
  instances: number;
  rows: Set<Row>;
  topologies: Topology[];
  cpuProfDir: string | undefined;
  gatewayMain: string | undefined;
  out: string | undefined;
}

const ROWS = ['latency', 'end-to-end', 'sync', 'floor'] as const;
type Row = (typeof ROWS)[number];

interface LatencyRow {
  label: string;
  callers: number;
  /** The rate the callers were held to, when paced. */
  pacedRate?: number;
  /** How the gateway ran (Hearth's rows). */
  deployment?: string;
  okPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
}

interface EndToEndRow {
  label: string;
  /** How the gateway ran (Hearth's rows). */
  deployment?: string;
  accepted: number;
  failed: number;
  acceptSeconds: number;
  /** From the first send until every accepted event had run; undefined when the run hit its limit. */
  totalSeconds: number | undefined;
  ran: number;
  /** Events that ended in the dead-letter queue instead of running: they count as finished, not as run. */
  deadLettered: number;
  /** CPU µs per event of the process doing the queueing (the gateway, or the floor's process). */
  cpuUsPerEvent: number | undefined;
  /** Events/s end to end of every run, in order, when the row is the median of several. */
  runsPerSecond?: (number | undefined)[];
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      events: { type: 'string', default: '20000' },
      callers: { type: 'string', default: '1,64' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      'paced-rate': { type: 'string', default: String(GOAL_EVENTS_PER_SECOND) },
      rounds: { type: 'string', default: '3' },
      'async-concurrency': { type: 'string', default: '10' },
      'shim-concurrency': { type: 'string', default: '4' },
      instances: { type: 'string', default: '1' },
      rows: { type: 'string', default: ROWS.join(',') },
      topology: { type: 'string', default: TOPOLOGIES.join(',') },
      'cpu-prof': { type: 'string' },
      'gateway-main': { type: 'string' },
      out: { type: 'string' },
    },
  });
  const rows = values.rows.split(',');
  const unknown = rows.find((r) => !(ROWS as readonly string[]).includes(r));
  if (unknown) throw new Error(`--rows: unknown row "${unknown}" (rows: ${ROWS.join(', ')})`);
  const topologies = values.topology.split(',');
  const unknownTopology = topologies.find((t) => !(TOPOLOGIES as readonly string[]).includes(t));
  if (unknownTopology)
    throw new Error(`--topology: unknown "${unknownTopology}" (topologies: ${TOPOLOGIES.join(', ')})`);
  return {
    events: positiveInteger('events', values.events),
    callers: values.callers.split(',').map((c) => positiveInteger('callers', c)),
    durationSeconds: positiveInteger('duration', values.duration),
    warmupSeconds: positiveInteger('warmup', values.warmup),
    pacedRate: values['paced-rate'] === '0' ? 0 : positiveInteger('paced-rate', values['paced-rate']),
    rounds: positiveInteger('rounds', values.rounds),
    asyncConcurrency: positiveInteger('async-concurrency', values['async-concurrency']),
    shimConcurrency: positiveInteger('shim-concurrency', values['shim-concurrency']),
    instances: positiveInteger('instances', values.instances),
    rows: new Set(rows as Row[]),
    topologies: topologies as Topology[],
    cpuProfDir: values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']),
    gatewayMain: values['gateway-main'] === undefined ? undefined : resolve(values['gateway-main']),
    out: values.out,
  };
}

interface WrkReport {
  requests: number;
  durationUs: number;
  p50Us: number;
  p99Us: number;
  connectErrors: number;
  readErrors: number;
  writeErrors: number;
  statusErrors: number;
  timeouts: number;
}

/**
 * A running wrk (one thread); `stop()` ends it early (SIGINT), after which it still reports.
 * `pacedRate`: the callers send on one schedule of that many requests a second.
 */
function startWrk(
  url: string,
  callers: number,
  bound: { seconds: number } | { requests: number },
  headers: string[],
  pacedRate?: number,
): { report: Promise<WrkReport>; stop(): void } {
  const byCount = 'requests' in bound;
  const script = byCount ? countScript : pacedRate ? pacedScript : durationScript;
  let child: ChildProcess;
  const report = new Promise<WrkReport>((resolve, reject) => {
    child = execFile(
      'wrk',
      [
        '-t1',
        `-c${callers}`,
        // wrk always runs for its duration: a count-bounded run is ended with stop().
        `-d${byCount ? END_TO_END_LIMIT_MS / 1000 : bound.seconds}s`,
        '--timeout',
        '10s',
        ...headers.flatMap((h) => ['-H', h]),
        '-s',
        script,
        url,
      ],
      {
        env: {
          ...process.env,
          ...(byCount ? { WRK_REQUESTS: String(bound.requests) } : {}),
          ...(pacedRate ? { WRK_RATE: String(pacedRate) } : {}),
        },
      },
      (error, stdout) => {
        const line = stdout.split('\n').find((l) => l.startsWith('WRK_RESULT '));
        if (line) resolve(JSON.parse(line.slice('WRK_RESULT '.length)) as WrkReport);
        else reject(new Error(`wrk printed no result (${error?.message ?? 'no error'}):\n${stdout}`));
      },
    );
  });
  return { report, stop: () => child.kill('SIGINT') };
}

const runWrk = (url: string, callers: number, seconds: number, headers: string[], pacedRate?: number) =>
  startWrk(url, callers, { seconds }, headers, pacedRate).report;

const failures = (r: WrkReport) =>
  r.statusErrors + r.connectErrors + r.readErrors + r.writeErrors + r.timeouts;

/** The gateway's async counters for the benchmark's function. */
interface AsyncCounters {
  enqueued: number;
  succeeded: number;
  deadLettered: number;
}

/**
 * How the gateway runs: one process taking calls and running events (as `hearth dev` and the
 * `all` role run it), or the Helm chart's split of an HTTP process and a worker process.
 */
interface Deployment {
  label: string;
  /** The process taking calls first; the counters are summed over all of them. */
  processes: RunningGateway[];
}

const TOPOLOGIES = ['one-process', 'split'] as const;
type Topology = (typeof TOPOLOGIES)[number];

async function readCounters(deployment: Deployment): Promise<AsyncCounters> {
  const total: AsyncCounters = { enqueued: 0, succeeded: 0, deadLettered: 0 };
  for (const gateway of deployment.processes) {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const sum = (metric: string) => {
      let sum = 0;
      const pattern = new RegExp(`^${metric}\\{([^}]*)\\} (\\S+)$`, 'gm');
      for (const [, labels, value] of text.matchAll(pattern))
        if (labels!.includes(`function="${FUNCTION}"`)) sum += Number(value);
      return sum;
    };
    total.enqueued += sum('hearth_async_events_enqueued_total');
    total.succeeded += sum('hearth_async_events_succeeded_total');
    total.deadLettered += sum('hearth_async_dead_lettered_total');
  }
  return total;
}

/** Starts the gateway process(es) of `topology`, each running HEARTH_ASYNC_CONCURRENCY events at once. */
async function deploy(fixture: GatewayFixture, topology: Topology, options: Options): Promise<Deployment> {
  const start = (role: 'all' | 'http' | 'worker') =>
    fixture.startGateway(
      {
        HEARTH_AUTH: 'false',
        HEARTH_GATEWAY_ROLE: role,
        HEARTH_ASYNC_CONCURRENCY: String(options.asyncConcurrency),
      },
      options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : [],
      ...(options.gatewayMain ? [options.gatewayMain] : []),
    );
  if (topology === 'one-process') {
    return { label: 'one process (HTTP + workers)', processes: [await start('all')] };
  }
  return { label: 'HTTP process + worker process', processes: [await start('http'), await start('worker')] };
}

/** CPU µs the deployment's processes have used, if all could be read. */
function deploymentCpuMicros(deployment: Deployment): number | undefined {
  let total = 0;
  for (const gateway of deployment.processes) {
    const micros = processCpuMicros(gateway.process.pid);
    if (micros === undefined) return undefined;
    total += micros;
  }
  return total;
}

const finished = (c: AsyncCounters) => c.succeeded + c.deadLettered;

/** Waits until every event the gateway accepted has run (or was dead-lettered). */
async function untilDrained(deployment: Deployment, timeoutMs = 120_000): Promise<AsyncCounters> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counters = await readCounters(deployment);
    if (finished(counters) >= counters.enqueued) return counters;
    if (Date.now() > deadline)
      throw new Error(`the queue did not drain in ${timeoutMs / 1000} s: ${JSON.stringify(counters)}`);
    await sleep(100);
  }
}

/** Hearth end to end: N Event invokes by `callers` wrk connections, until all have run. */
async function hearthEndToEnd(
  deployment: Deployment,
  url: string,
  events: number,
  callers: number,
): Promise<EndToEndRow> {
  const before = await untilDrained(deployment);
  const cpuBefore = deploymentCpuMicros(deployment);
  const start = performance.now();
  let acceptSeconds = 0;
  let sending = true;
  const wrk = startWrk(url, callers, { requests: events }, [EVENT_HEADER]);
  const sent = wrk.report.finally(() => {
    acceptSeconds = (performance.now() - start) / 1000;
    sending = false;
  });
  // The events run while they are being sent; the run ends when the last accepted one has.
  let totalSeconds: number | undefined;
  let now = before;
  let lastGrowth = start;
  let pauseMs = 100;
  while (performance.now() - start < END_TO_END_LIMIT_MS) {
    await sleep(pauseMs);
    const previous = now;
    now = await readCounters(deployment);
    // A scrape costs the gateway about as much CPU as a few events: read often only near the
    // end (within 100 ms of it), so that the reading does not weigh on what is measured.
    const elapsedMs = performance.now() - start;
    const sendsLeft = Math.max(0, events - (now.enqueued - before.enqueued));
    const runsLeft = now.enqueued - before.enqueued - (finished(now) - finished(before)) + sendsLeft;
    const runRate = (finished(now) - finished(before)) / elapsedMs;
    const sendRate = (now.enqueued - before.enqueued) / elapsedMs;
    const msLeft = sending ? (sendRate > 0 ? sendsLeft / sendRate : 0) : runRate > 0 ? runsLeft / runRate : 0;
    pauseMs = Math.max(100, Math.min(1000, msLeft / 4));
    if (now.enqueued > previous.enqueued) lastGrowth = performance.now();
    // All sent, or wrk stopped early on failed calls: nothing more is coming.
    if (sending && (now.enqueued - before.enqueued >= events || performance.now() - lastGrowth > 2000))
      wrk.stop();
    if (!sending && finished(now) - finished(before) >= now.enqueued - before.enqueued) {
      totalSeconds = (performance.now() - start) / 1000;
      break;
    }
  }
  const report = await sent;
  const cpuAfter = deploymentCpuMicros(deployment);
  const accepted = now.enqueued - before.enqueued;
  const ran = now.succeeded - before.succeeded;
  return {
    label: `Hearth: ${deployment.label} + shim`,
    deployment: deployment.label,
    accepted,
    failed: failures(report),
    acceptSeconds,
    totalSeconds,
    ran,
    deadLettered: now.deadLettered - before.deadLettered,
    cpuUsPerEvent:
      cpuBefore === undefined || cpuAfter === undefined || accepted === 0
        ? undefined
        : (cpuAfter - cpuBefore) / accepted,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * The floor: a bare BullMQ queue and a no-op worker in this process, on the same Redis, with
 * the job options Hearth's events use. No HTTP, no validation, no backlog check, no invocation.
 */
class BullmqFloor {
  private readonly producer: Redis;
  private readonly queue: Queue;
  private readonly worker: Worker;
  private readonly workerConnection: Redis;
  completed = 0;

  constructor(redisUrl: string, concurrency: number) {
    const prefix = 'bench:bull';
    this.producer = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.queue = new Queue('floor', { connection: this.producer, prefix });
    this.workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.worker = new Worker('floor', async () => undefined, {
      connection: this.workerConnection,
      prefix,
      concurrency,
    });
    this.worker.on('completed', () => (this.completed += 1));
  }

  /** One job shaped like Hearth's event records. */
  async add(): Promise<void> {
    const requestId = randomUUID();
    await this.queue.add(
      'event',
      {
        functionName: FUNCTION,
        requestId,
        payload: '{"bench":true}',
        acceptedAt: Date.now(),
        functionErrors: 0,
        requeues: 0,
        invocations: 0,
      },
      {
        jobId: requestId,
        removeOnComplete: true,
        removeOnFail: false,
        attempts: 20,
        backoff: { type: 'fixed', delay: 1000 },
      },
    );
  }

  async untilIdle(timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await this.queue.count()) > 0) {
      if (Date.now() > deadline) throw new Error('the floor queue did not drain');
      await sleep(50);
    }
  }

  /** `queue.add` latency at `callers` concurrent producers for `seconds`. */
  async latency(callers: number, seconds: number): Promise<LatencyRow> {
    const times: number[] = [];
    let failed = 0;
    const start = performance.now();
    const end = start + seconds * 1000;
    await Promise.all(
      Array.from({ length: callers }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          try {
            await this.add();
            times.push(performance.now() - t);
          } catch {
            failed += 1;
          }
        }
      }),
    );
    const elapsed = (performance.now() - start) / 1000;
    times.sort((a, b) => a - b);
    return {
      label: 'bare BullMQ queue.add (floor)',
      callers,
      okPerSecond: times.length / elapsed,
      p50Ms: percentile(times, 50),
      p99Ms: percentile(times, 99),
      failed,
    };
  }

  /** N jobs added by `callers` producers, timed until the worker completed them all. */
  async endToEnd(events: number, callers: number): Promise<EndToEndRow> {
    await this.untilIdle();
    const completedBefore = this.completed;
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    let next = 0;
    let failed = 0;
    await Promise.all(
      Array.from({ length: callers }, async () => {
        while (next < events) {
          next += 1;
          await this.add().catch(() => (failed += 1));
        }
      }),
    );
    const acceptSeconds = (performance.now() - start) / 1000;
    const accepted = events - failed;
    let totalSeconds: number | undefined;
    while (performance.now() - start < END_TO_END_LIMIT_MS) {
      if (this.completed - completedBefore >= accepted) {
        totalSeconds = (performance.now() - start) / 1000;
        break;
      }
      await sleep(5);
    }
    const cpu = process.cpuUsage(cpuBefore);
    return {
      label: 'bare BullMQ queue + no-op worker (floor)',
      accepted,
      failed,
      acceptSeconds,
      totalSeconds,
      ran: this.completed - completedBefore,
      deadLettered: 0,
      cpuUsPerEvent: accepted === 0 ? undefined : (cpu.user + cpu.system) / accepted,
    };
  }

  async stop(): Promise<void> {
    await this.worker.close();
    await this.queue.close();
    this.producer.disconnect();
    this.workerConnection.disconnect();
  }
}

const ms = (value: number) => value.toFixed(2);
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');
const callersCell = (row: LatencyRow) =>
  row.pacedRate === undefined ? String(row.callers) : `${row.callers}, paced at ${row.pacedRate}/s`;
const perSecond = (row: EndToEndRow) =>
  row.totalSeconds === undefined ? undefined : row.accepted / row.totalSeconds;

/**
 * `rounds` end-to-end runs, one after the other; the row is the median run by events/s (an
 * unfinished run counts as the slowest), with every run's rate beside it. This machine's speed
 * drifts within minutes: the same build ran 1,480 to 2,350 events/s in runs minutes apart.
 */
async function medianRun(rounds: number, run: () => Promise<EndToEndRow>): Promise<EndToEndRow> {
  const runs: EndToEndRow[] = [];
  for (let round = 0; round < rounds; round++) {
    runs.push(await run());
    console.error(`  ${JSON.stringify(runs.at(-1))}`);
  }
  const sorted = [...runs].sort((x, y) => (perSecond(x) ?? 0) - (perSecond(y) ?? 0));
  return { ...sorted[Math.floor(sorted.length / 2)]!, runsPerSecond: runs.map(perSecond) };
}

function report(
  options: Options,
  latency: LatencyRow[],
  sync: LatencyRow[],
  endToEnd: EndToEndRow[],
): string {
  const lines = [
    `### Async: Event invokes of a no-op function (${options.durationSeconds} s per row after ${options.warmupSeconds} s warm-up, wrk; HEARTH_ASYNC_CONCURRENCY ${options.asyncConcurrency}, ${options.instances} shim(s) x ${options.shimConcurrency} runtimes)`,
    '',
    '| path | callers | ok/s | p50 ms | p99 ms | failed |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...[...latency, ...sync].map(
      (r) =>
        `| ${r.label} | ${callersCell(r)} | ${r.okPerSecond.toFixed(0)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${r.failed} |`,
    ),
    '',
    `### Async end to end: ${options.events} events sent by ${Math.max(...options.callers)} callers, until all have run (the median of ${options.rounds} runs)`,
    '',
    '| path | accepted | failed | dead-lettered | accepted/s | events/s end to end | all run after s | CPU µs/event | events/s by run |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...endToEnd.map((r) => {
      const rate = perSecond(r);
      const runs = (r.runsPerSecond ?? [rate]).map((v) => (v === undefined ? 'unfinished' : v.toFixed(0)));
      return (
        `| ${r.label} | ${r.accepted} | ${r.failed} | ${r.deadLettered} | ${(r.accepted / r.acceptSeconds).toFixed(0)} | ` +
        `${rate === undefined ? `unfinished (${r.ran} ran)` : rate.toFixed(0)} | ` +
        `${r.totalSeconds === undefined ? '-' : r.totalSeconds.toFixed(2)} | ` +
        `${r.cpuUsPerEvent === undefined ? '-' : r.cpuUsPerEvent.toFixed(0)} | ${runs.join(', ')} |`
      );
    }),
  ];

  const goals: string[] = [];
  const floor = endToEnd.find((r) => r.label.includes('floor'));
  for (const hearth of endToEnd.filter((r) => r.label.startsWith('Hearth'))) {
    const hearthRate = perSecond(hearth);
    const floorRate = floor && perSecond(floor);
    const peak = Math.max(...options.callers);
    const syncPeak = sync.find((r) => r.callers === peak);
    const versus = [
      floorRate ? `${((100 * (hearthRate ?? 0)) / floorRate).toFixed(0)}% of the BullMQ floor` : undefined,
      syncPeak ? `${((100 * (hearthRate ?? 0)) / syncPeak.okPerSecond).toFixed(0)}% of sync ok/s` : undefined,
    ]
      .filter(Boolean)
      .join(', ');
    goals.push(
      `| end to end >= ${GOAL_EVENTS_PER_SECOND} events/s, ${hearth.deployment} | - | ${hearthRate === undefined ? 'unfinished' : hearthRate.toFixed(0)} ` +
        `(${((hearthRate ?? 0) / GOAL_EVENTS_PER_SECOND).toFixed(2)}x the goal; ${versus}) | ${verdict((hearthRate ?? 0) >= GOAL_EVENTS_PER_SECOND)} |`,
    );
  }
  for (const row of latency.filter((r) => r.deployment !== undefined && r.label.includes('202'))) {
    const floorRow = latency.find(
      (r) => r.label.includes('floor') && r.callers === row.callers && row.pacedRate === undefined,
    );
    const versus = floorRow ? `; floor queue.add p99 ${ms(floorRow.p99Ms)} ms` : '';
    goals.push(
      `| 202 p99 < ${GOAL_202_P99_MS} ms, ${row.deployment} | ${callersCell(row)} | ${ms(row.p99Ms)} ms (${(row.p99Ms / GOAL_202_P99_MS).toFixed(2)}x the limit${versus}) | ${verdict(row.p99Ms < GOAL_202_P99_MS)} |`,
    );
  }
  lines.push(
    '',
    '### Async against its goals',
    '',
    '| goal | callers | Hearth | |',
    '| --- | ---: | --- | --- |',
    ...goals,
  );
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  const redis = await startRedis();
  // Plays the controller: the function in the registry, its shims started and registered (each
  // shim runs as many runtimes as the function's perInstance concurrency).
  const fixture = new GatewayFixture(redis.url);
  let floor: BullmqFloor | undefined;
  try {
    const route = await fixture.addFunction({
      name: FUNCTION,
      source: NOOP_SOURCE,
      spec: { concurrency: { perInstance: options.shimConcurrency } },
    });
    for (let i = 0; i < options.instances; i++) await fixture.addInstance(route, `${FUNCTION}-${i + 1}`);
    const latency: LatencyRow[] = [];
    const sync: LatencyRow[] = [];
    const endToEnd: EndToEndRow[] = [];
    const peakCallers = Math.max(...options.callers);
    for (const topology of options.topologies) {
      const deployment = await deploy(fixture, topology, options);
      const url = `${deployment.processes[0]!.url}/2015-03-31/functions/${FUNCTION}/invocations`;
      const probe = await fetch(url, { method: 'POST', body: '{}' });
      if (probe.status !== 200)
        throw new Error(`a sync call answered ${probe.status}: ${await probe.text()}`);
      const measure = async (label: string, callers: number, headers: string[], pacedRate?: number) => {
        await runWrk(url, callers, options.warmupSeconds, headers, pacedRate);
        await untilDrained(deployment);
        const r = await runWrk(url, callers, options.durationSeconds, headers, pacedRate);
        const row: LatencyRow = {
          label,
          deployment: deployment.label,
          callers,
          ...(pacedRate ? { pacedRate } : {}),
          okPerSecond: (r.requests - r.statusErrors) / (r.durationUs / 1e6),
          p50Ms: r.p50Us / 1000,
          p99Ms: r.p99Us / 1000,
          failed: failures(r),
        };
        console.error(
          `  ${label} x${callersCell(row)}: ${row.okPerSecond.toFixed(0)} ok/s, p99 ${ms(row.p99Ms)} ms`,
        );
        // The next row starts with an empty queue: the events of this one do not load it.
        await untilDrained(deployment);
        return row;
      };
      const eventLabel = `Hearth Event invoke (202), ${deployment.label}`;
      if (options.rows.has('latency')) {
        for (const callers of options.callers)
          latency.push(await measure(eventLabel, callers, [EVENT_HEADER]));
        if (options.pacedRate > 0)
          latency.push(await measure(eventLabel, peakCallers, [EVENT_HEADER], options.pacedRate));
      }
      if (options.rows.has('end-to-end')) {
        console.error(`end to end (${deployment.label}): ${options.events} events, ${peakCallers} callers`);
        if (!options.rows.has('latency')) {
          // The latency rows warm the gateway up; without them the first run would start cold
          // (it ran a quarter to a third slower than the next, every time).
          await runWrk(url, peakCallers, options.warmupSeconds, [EVENT_HEADER]);
          await untilDrained(deployment);
        }
        endToEnd.push(
          await medianRun(options.rounds, () => hearthEndToEnd(deployment, url, options.events, peakCallers)),
        );
      }
      // The sync path is the same HTTP process in every topology: measured once.
      if (options.rows.has('sync') && sync.length === 0)
        for (const callers of options.callers)
          sync.push(await measure('Hearth sync invoke (200), same gateway', callers, []));
      // Stopped before the next topology or the floor runs, so that each has the machine (and a
      // profile shows this load alone).
      for (const gateway of deployment.processes) await gateway.process.stop('SIGTERM', 3000);
    }

    if (options.rows.has('floor')) {
      const bare = (floor = new BullmqFloor(redis.url, options.asyncConcurrency));
      for (const callers of options.callers) {
        await bare.latency(callers, options.warmupSeconds);
        await bare.untilIdle();
        const row = await bare.latency(callers, options.durationSeconds);
        console.error(
          `  ${row.label} x${callers}: ${row.okPerSecond.toFixed(0)} ok/s, p99 ${ms(row.p99Ms)} ms`,
        );
        latency.push(row);
        await bare.untilIdle();
      }
      endToEnd.push(await medianRun(options.rounds, () => bare.endToEnd(options.events, peakCallers)));
    }

    const markdown = report(options, latency, sync, endToEnd);
    process.stdout.write(markdown);
    if (options.out) await writeFile(options.out, markdown);
  } finally {
    await floor?.stop();
    await fixture.stop();
    await redis.stop();
  }
}
