/**
 * The shim benchmark: warm invocations of a no-op Node handler through Hearth's runtime shim,
 * side by side with the same handler behind OpenFaaS's of-watchdog, behind AWS's Runtime
 * Interface Emulator with AWS's Node runtime interface client, and called directly by a plain
 * Node HTTP server (the floor); then cold starts, spawn to first answer.
 *
 * Hearth runs as on Lambda (one call at a time in a runtime process) and, as a row of its own, with
 * one runtime process taking all the callers' calls at once (`concurrency.perRuntime`, Lambda
 * Managed Instances' AWS_LAMBDA_MAX_CONCURRENCY): the model of of-watchdog's Node server, which
 * also takes every call at once in one process.
 *
 * Warm cells are measured in rounds (every target once per round, then the next round) and each
 * cell reports the median of its rounds: this machine's speed drifts within minutes, and a
 * comparison of two targets measured minutes apart would measure the drift.
 *
 * Usage: node bench/dist/index.js shim [--duration 5] [--warmup 2] [--rounds 3] [--callers 1,32]
 *   [--cold-runs 7] [--cold-only] [--hearth-concurrency 1] [--shim-main runtime-shim/dist/main.cjs] [--only hearth,hearth-per-runtime,hearth-portable,of-watchdog,rie,rie-hearth-bootstrap,floor] [--out results.md]
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isDeepStrictEqual, parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShimEnv, ShimPaths } from '@hearth/api';
import { freePort } from '@hearth/test';
import { findPeer, repoRoot } from '@hearth/test/conformance/peers';
import { spawnServer, type ServerProcess } from './server-process.js';
import { positiveInteger } from './options.js';

const benchDir = join(repoRoot, 'bench');
const handlerDir = join(benchDir, 'fixtures', 'noop');
const directServer = join(benchDir, 'fixtures', 'direct-server.mjs');
const wrkScript = join(benchDir, 'wrk', 'post-json.lua');
const shimMain = join(repoRoot, 'runtime-shim', 'dist', 'main.cjs');
const shimNodeBootstrap = join(repoRoot, 'runtime-shim', 'dist', 'runtimes', 'nodejs', 'bootstrap.cjs');
const expectedResult = { ok: true };

/** One way of serving the handler over HTTP. */
interface Target {
  key: string;
  label: string;
  /** Why it is not measured, when it cannot be. */
  missing?: string;
  /** Callers it can serve at once, when limited, and why. */
  maxCallers?: { callers: number; why: string };
  /** Measured warm only: its cold start is another target's. */
  warmOnly?: boolean;
  /** Starts a fresh instance; resolves once the process is spawned (not yet serving). */
  spawn(): Promise<{ processes: ServerProcess[]; url: string }>;
}

interface Options {
  durationSeconds: number;
  warmupSeconds: number;
  callers: number[];
  /** Warm rounds: every target's cells once per round; a cell reports its rounds' medians. */
  rounds: number;
  coldRuns: number;
  /** Skip the warm cells: only the cold starts. */
  coldOnly: boolean;
  hearthConcurrency: number;
  /** The shim to measure (another build of it, to compare). */
  shimMain: string;
  only: string[] | undefined;
  out: string | undefined;
}

interface WarmResult {
  target: Target;
  callers: number;
  okPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
}

/** A warm cell over its rounds: the medians, the failures of all rounds, each round's ok/s. */
interface WarmCell extends WarmResult {
  roundsOkPerSecond: number[];
}

interface ColdResult {
  target: Target;
  medianMs: number;
  minMs: number;
  maxMs: number;
  runsMs: number[];
}

/** What wrk-post-json.lua prints when a run is done. */
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

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      callers: { type: 'string', default: '1,32' },
      'cold-runs': { type: 'string', default: '7' },
      'cold-only': { type: 'boolean', default: false },
      'hearth-concurrency': { type: 'string', default: '1' },
      'shim-main': { type: 'string', default: shimMain },
      only: { type: 'string' },
      out: { type: 'string' },
    },
  });
  return {
    durationSeconds: positiveInteger('duration', values.duration),
    warmupSeconds: positiveInteger('warmup', values.warmup),
    callers: values.callers.split(',').map((c) => positiveInteger('callers', c)),
    rounds: positiveInteger('rounds', values.rounds),
    coldRuns: positiveInteger('cold-runs', values['cold-runs']),
    coldOnly: values['cold-only'],
    hearthConcurrency: positiveInteger('hearth-concurrency', values['hearth-concurrency']),
    shimMain: values['shim-main'],
    only: values.only?.split(','),
    out: values.out,
  };
}

let shimInstances = 0;

/**
 * Hearth's shim with its Node runtime. `auto` isolation is what a root host gets by default
 * (cgroup memory limit, loop-mounted /tmp); `portable` needs no privileges (RSS polling, a TMPDIR
 * directory). Both are measured so the cost of isolation shows on its own.
 */
function hearthTarget(
  isolation: 'auto' | 'portable',
  options: Options,
  stateDir: string,
  perRuntime?: number,
): Target {
  return {
    key: perRuntime ? 'hearth-per-runtime' : isolation === 'auto' ? 'hearth' : 'hearth-portable',
    label: perRuntime
      ? `Hearth shim + Node runtime (${isolation} isolation), ${perRuntime} calls at once in one runtime`
      : `Hearth shim + Node runtime (${isolation} isolation)`,
    ...(perRuntime ? { warmOnly: true } : {}),
    ...(existsSync(options.shimMain) ? {} : { missing: `${options.shimMain} is not built (npm run build)` }),
    async spawn() {
      const port = await freePort();
      const processes = [
        spawnServer({
          logDir: stateDir,
          name: 'hearth-shim',
          command: process.execPath,
          args: [options.shimMain],
          env: {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            [ShimEnv.functionName]: 'bench-noop',
            [ShimEnv.runtime]: 'nodejs20.x',
            [ShimEnv.handler]: 'index.handler',
            [ShimEnv.codeDir]: handlerDir,
            [ShimEnv.host]: '127.0.0.1',
            [ShimEnv.port]: String(port),
            ...(perRuntime
              ? { [ShimEnv.concurrency]: String(perRuntime), [ShimEnv.perRuntime]: String(perRuntime) }
              : { [ShimEnv.concurrency]: String(options.hearthConcurrency) }),
            [ShimEnv.isolation]: isolation,
            [ShimEnv.stateDir]: join(stateDir, `shim-${shimInstances++}`),
            // The function's START/END/REPORT lines are written as in production, to a file.
            [ShimEnv.logLevel]: 'info',
          },
        }),
      ];
      return { processes, url: `http://127.0.0.1:${port}${ShimPaths.invoke}` };
    },
  };
}

/** AWS's emulator with `runtimeEntry` (a Node program speaking the Runtime API) as the bootstrap. */
function rieTarget(
  key: string,
  label: string,
  runtimeEntry: string | undefined,
  rie: string | undefined,
  ric: string | undefined,
  stateDir: string,
): Target {
  const missing =
    !rie || !ric
      ? 'aws-lambda-rie or aws-lambda-ric not installed (scripts/peers/install.sh)'
      : !runtimeEntry || !existsSync(runtimeEntry)
        ? `${runtimeEntry} is not built (npm run build)`
        : undefined;
  return {
    key,
    label,
    // One emulated execution environment, one call at a time, as on Lambda; a second call
    // while one runs makes this RIE panic (nil pointer in rapidcore's Server.Invoke).
    maxCallers: { callers: 1, why: 'crashes on concurrent invocations (one call at a time)' },
    ...(missing ? { missing } : {}),
    async spawn() {
      const [port, runtimeApiPort] = [await freePort(), await freePort()];
      const processes = [
        spawnServer({
          logDir: stateDir,
          name: key,
          command: rie!,
          args: [
            '--runtime-interface-emulator-address',
            `127.0.0.1:${port}`,
            '--runtime-api-address',
            `127.0.0.1:${runtimeApiPort}`,
            '--log-level',
            'error',
            process.execPath,
            runtimeEntry!,
            'index.handler',
          ],
          cwd: handlerDir,
          env: {
            PATH: process.env.PATH,
            HOME: process.env.HOME,
            LAMBDA_TASK_ROOT: handlerDir,
            _HANDLER: 'index.handler',
          },
        }),
      ];
      return { processes, url: `http://127.0.0.1:${port}/2015-03-31/functions/function/invocations` };
    },
  };
}

function targets(options: Options, stateDir: string): Target[] {
  const watchdog = findPeer('of-watchdog');
  const rie = findPeer('aws-lambda-rie');
  const ric = findPeer('aws-lambda-ric');
  const notInstalled = 'not installed (scripts/peers/install.sh)';

  const list: Target[] = [
    ...(['auto', 'portable'] as const).map((isolation) => hearthTarget(isolation, options, stateDir)),
    hearthTarget('auto', options, stateDir, Math.max(...options.callers)),
    {
      key: 'of-watchdog',
      label: 'of-watchdog (http mode) + Node server',
      ...(watchdog ? {} : { missing: `of-watchdog ${notInstalled}` }),
      async spawn() {
        const [port, upstreamPort] = [await freePort(), await freePort()];
        const processes = [
          spawnServer({
            logDir: stateDir,
            name: 'of-watchdog',
            command: watchdog!,
            cwd: benchDir,
            env: {
              PATH: process.env.PATH,
              mode: 'http',
              port: String(port),
              upstream_url: `http://127.0.0.1:${upstreamPort}`,
              fprocess: `${process.execPath} ${directServer}`,
              SERVER_PORT: String(upstreamPort),
              HANDLER_MODULE: join(handlerDir, 'index.mjs'),
              // No per-request log line on either side, as with the floor.
              prefix_logs: 'false',
              log_buffer_size: '0',
            },
          }),
        ];
        return { processes, url: `http://127.0.0.1:${port}/` };
      },
    },
    rieTarget('rie', 'aws-lambda-rie + aws-lambda-ric', ric, rie, ric, stateDir),
    // Not run unless asked for (--only): Hearth's bootstrap in the same place as AWS's client,
    // which separates the time spent in the runtime from the time spent in the shim.
    rieTarget(
      'rie-hearth-bootstrap',
      'aws-lambda-rie + Hearth Node bootstrap',
      shimNodeBootstrap,
      rie,
      ric,
      stateDir,
    ),
    {
      key: 'floor',
      label: 'plain Node server (floor)',
      async spawn() {
        const port = await freePort();
        const processes = [
          spawnServer({
            logDir: stateDir,
            name: 'direct-server',
            command: process.execPath,
            args: [directServer],
            env: {
              PATH: process.env.PATH,
              SERVER_PORT: String(port),
              HANDLER_MODULE: join(handlerDir, 'index.mjs'),
            },
          }),
        ];
        return { processes, url: `http://127.0.0.1:${port}/` };
      },
    },
  ];
  const diagnostic = new Set(['rie-hearth-bootstrap']);
  return list.filter((t) => (options.only ? options.only.includes(t.key) : !diagnostic.has(t.key)));
}

/** One invocation; true when it answered 200 with the handler's result. */
async function invokeOnce(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      body: '{"bench":true}',
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(5000),
    });
    const text = await response.text();
    return response.status === 200 && isDeepStrictEqual(JSON.parse(text), expectedResult);
  } catch {
    return false;
  }
}

/** Polls until the first successful invocation; the time from `since` to it, in ms. */
async function untilFirstAnswer(url: string, processes: ServerProcess[], since: number): Promise<number> {
  const deadline = since + 15_000;
  while (performance.now() < deadline) {
    if (await invokeOnce(url)) return performance.now() - since;
    const dead = processes.find((p) => p.hasExited());
    if (dead) throw new Error(`${dead.name} exited before answering:\n${dead.logs()}`);
    await sleep(1);
  }
  throw new Error(
    `no successful answer from ${url} within 15 s:\n${processes.map((p) => p.logs()).join('\n')}`,
  );
}

async function stopAll(processes: ServerProcess[]) {
  await Promise.all(processes.map((p) => p.stop()));
}

function runWrk(url: string, callers: number, seconds: number): WrkReport {
  // One wrk thread: it keeps the load generator to one core's share of a small machine.
  const output = execFileSync(
    'wrk',
    ['-t1', `-c${callers}`, `-d${seconds}s`, '--timeout', '10s', '-s', wrkScript, url],
    { encoding: 'utf8' },
  );
  const line = output.split('\n').find((l) => l.startsWith('WRK_RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${output}`);
  return JSON.parse(line.slice('WRK_RESULT '.length)) as WrkReport;
}

async function measureWarm(target: Target, options: Options): Promise<WarmResult[]> {
  const { processes, url } = await target.spawn();
  try {
    await untilFirstAnswer(url, processes, performance.now());
    const results: WarmResult[] = [];
    for (const callers of options.callers) {
      if (target.maxCallers && callers > target.maxCallers.callers) continue;
      runWrk(url, callers, options.warmupSeconds);
      const report = runWrk(url, callers, options.durationSeconds);
      const failed =
        report.statusErrors + report.connectErrors + report.readErrors + report.writeErrors + report.timeouts;
      results.push({
        target,
        callers,
        okPerSecond: (report.requests - report.statusErrors) / (report.durationUs / 1e6),
        p50Ms: report.p50Us / 1000,
        p99Ms: report.p99Us / 1000,
        failed,
      });
      console.error(`  ${target.key} x${callers}: ${results.at(-1)!.okPerSecond.toFixed(0)} ok/s`);
    }
    return results;
  } finally {
    await stopAll(processes);
  }
}

/** Spawn to first answer of a fresh instance. */
async function coldStart(target: Target): Promise<number> {
  const since = performance.now();
  const { processes, url } = await target.spawn();
  try {
    return await untilFirstAnswer(url, processes, since);
  } finally {
    await stopAll(processes);
  }
}

/**
 * Cold starts of every target, taken in turns (one of each, then the next round), so that a
 * change in the machine's load during the runs weighs on every target alike.
 */
async function measureCold(targets: Target[], runs: number): Promise<ColdResult[]> {
  const times = new Map(targets.map((target) => [target, [] as number[]]));
  for (let run = 0; run < runs; run++) {
    console.error(`cold: round ${run + 1} of ${runs}`);
    for (const target of targets) times.get(target)!.push(await coldStart(target));
  }
  return targets.map((target) => {
    const runsMs = times.get(target)!;
    return {
      target,
      medianMs: median(runsMs),
      minMs: Math.min(...runsMs),
      maxMs: Math.max(...runsMs),
      runsMs,
    };
  });
}

/** The middle value (the upper middle of an even count). */
function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Each target's cells, measured once per round in turns; a cell is the median of its rounds. */
async function measureWarmRounds(targets: Target[], options: Options): Promise<WarmCell[]> {
  const rounds: WarmResult[] = [];
  for (let round = 0; round < options.rounds; round++) {
    for (const target of targets) {
      console.error(`warm: round ${round + 1} of ${options.rounds}: ${target.label}`);
      rounds.push(...(await measureWarm(target, options)));
    }
  }
  const cells: WarmCell[] = [];
  for (const target of targets) {
    for (const callers of options.callers) {
      const runs = rounds.filter((r) => r.target === target && r.callers === callers);
      if (runs.length === 0) continue;
      cells.push({
        target,
        callers,
        okPerSecond: median(runs.map((r) => r.okPerSecond)),
        p50Ms: median(runs.map((r) => r.p50Ms)),
        p99Ms: median(runs.map((r) => r.p99Ms)),
        failed: runs.reduce((sum, r) => sum + r.failed, 0),
        roundsOkPerSecond: runs.map((r) => r.okPerSecond),
      });
    }
  }
  return cells;
}

const ms = (value: number) => value.toFixed(2);
const verdict = (ok: boolean) => (ok ? 'met' : '**missed**');

function report(warm: WarmCell[], cold: ColdResult[], skipped: Target[], options: Options): string {
  const lines: string[] = [];
  const cpus = execFileSync('nproc', { encoding: 'utf8' }).trim();
  if (warm.length > 0) {
    lines.push(
      `### Shim benchmark: no-op Node handler, warm (medians of ${options.rounds} rounds taken in turns; ${options.durationSeconds} s per cell after ${options.warmupSeconds} s warm-up, wrk, ${cpus} CPUs, Node ${process.version})`,
      '',
      '| target | callers | ok req/s | p50 ms | p99 ms | failed | ok req/s by round |',
      '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    );
  }
  for (const r of warm) {
    const rounds = r.roundsOkPerSecond.map((value) => value.toFixed(0)).join(', ');
    lines.push(
      `| ${r.target.label} | ${r.callers} | ${r.okPerSecond.toFixed(0)} | ${ms(r.p50Ms)} | ${ms(r.p99Ms)} | ${r.failed} | ${rounds} |`,
    );
  }
  if (cold.length > 0) {
    lines.push(
      '',
      `### Cold start: spawn to first successful answer (${options.coldRuns} runs, ${cpus} CPUs, Node ${process.version})`,
      '',
      '| target | median ms | min ms | max ms | runs (ms, in order) |',
      '| --- | ---: | ---: | ---: | --- |',
    );
    for (const c of cold) {
      const runs = c.runsMs.map((run) => run.toFixed(0)).join(', ');
      lines.push(`| ${c.target.label} | ${ms(c.medianMs)} | ${ms(c.minMs)} | ${ms(c.maxMs)} | ${runs} |`);
    }
  }

  const cell = (key: string, callers: number) =>
    warm.find((r) => r.target.key === key && r.callers === callers);
  const goals: string[] = [];
  const modes = [
    { key: 'hearth', mode: '' },
    { key: 'hearth-per-runtime', mode: ', all calls at once in one runtime' },
  ];
  for (const callers of options.callers) {
    for (const { key, mode } of modes) {
      const hearth = cell(key, callers);
      // At one caller a runtime taking many calls at once is the same as one taking one.
      if (!hearth || (key !== 'hearth' && callers === 1)) continue;
      const watchdog = cell('of-watchdog', callers);
      const rie = cell('rie', callers);
      const floor = cell('floor', callers);
      if (watchdog) {
        const ratio = hearth.okPerSecond / watchdog.okPerSecond;
        goals.push(
          `| throughput >= of-watchdog's${mode} | ${callers} | ${ratio.toFixed(2)}x | ${verdict(ratio >= 1)} |`,
        );
      }
      if (rie) {
        const ratio = hearth.okPerSecond / rie.okPerSecond;
        goals.push(
          `| throughput >= 3x aws-lambda-rie's${mode} | ${callers} | ${ratio.toFixed(2)}x | ${verdict(ratio >= 3)} |`,
        );
      }
      if (floor) {
        const extra = hearth.p50Ms - floor.p50Ms;
        goals.push(
          `| p50 within 0.5 ms of the floor${mode} | ${callers} | +${ms(extra)} ms | ${verdict(extra <= 0.5)} |`,
        );
      }
    }
  }
  // The emulator takes one call at a time (a second concurrent call crashes it), so its capacity
  // is what it does at 1 caller; Hearth's is its best over the caller counts measured.
  const best = (key: string) =>
    warm.filter((r) => r.target.key === key).sort((x, y) => y.okPerSecond - x.okPerSecond)[0];
  const rieBest = best('rie');
  for (const { key, mode } of modes) {
    const hearthBest = best(key);
    if (!hearthBest || !rieBest || options.callers.length < 2) continue;
    const ratio = hearthBest.okPerSecond / rieBest.okPerSecond;
    goals.push(
      `| capacity >= 3x aws-lambda-rie's${mode} (each at its best: Hearth ${hearthBest.callers}, emulator ${rieBest.callers} caller(s)) | - | ${ratio.toFixed(2)}x | ${verdict(ratio >= 3)} |`,
    );
  }
  const hearthCold = cold.find((c) => c.target.key === 'hearth');
  if (hearthCold) {
    const rieCold = cold.find((c) => c.target.key === 'rie');
    const versus = rieCold ? ` (aws-lambda-rie + ric: ${ms(rieCold.medianMs)} ms)` : '';
    goals.push(
      `| cold start < 150 ms | - | ${ms(hearthCold.medianMs)} ms${versus} | ${verdict(hearthCold.medianMs < 150)} |`,
    );
  }
  if (goals.length > 0) {
    lines.push(
      '',
      '### Hearth against its goals',
      '',
      '| goal | callers | Hearth | |',
      '| --- | ---: | ---: | --- |',
      ...goals,
    );
  }
  for (const t of skipped) lines.push('', `Not measured: ${t.label}: ${t.missing}.`);
  for (const t of new Set(warm.map((r) => r.target))) {
    const limit = t.maxCallers;
    if (limit && options.callers.some((c) => c > limit.callers)) {
      lines.push('', `Not measured above ${limit.callers} caller(s): ${t.label}: ${limit.why}.`);
    }
  }
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  try {
    if (!options.coldOnly) execFileSync('wrk', ['--version'], { stdio: 'ignore' });
  } catch (error) {
    // wrk --version exits 1 after printing its version; only a missing binary is a problem.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error('wrk is not installed: run scripts/install-deps.sh (Debian package wrk)', {
        cause: error,
      });
    }
  }
  const stateDir = await mkdtemp(join(tmpdir(), 'hearth-bench-'));
  try {
    const all = targets(options, stateDir);
    const available = all.filter((t) => !t.missing);
    const skipped = all.filter((t) => t.missing);
    const warm = options.coldOnly ? [] : await measureWarmRounds(available, options);
    const cold = await measureCold(
      available.filter((t) => !t.warmOnly),
      options.coldRuns,
    );
    const markdown = report(warm, cold, skipped, options);
    process.stdout.write(markdown);
    if (options.out) await writeFile(options.out, markdown);
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
}

// Also runnable on its own: node bench/dist/shim.js [options]
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
