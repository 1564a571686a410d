/**
 * The gateway benchmark: warm no-op invocations through gateway + shim, side by side with the
 * same shim called directly and with a plain Node HTTP server calling the handler (the floor).
 * The gateway hop is the difference between the first two: its goals are <= 1 ms at p50 and
 * >= 60% of the direct-to-shim throughput. Auth is off (as in `hearth dev`) unless --auth, which
 * sends a Bearer key.
 *
 * Two reference rows put another hop where the gateway was, each passing at most as many calls
 * at once to the shim as the gateway does (the function's perInstance): HAProxy (http mode, one
 * thread; measured when `haproxy` is installed), what an HTTP hop written in C costs on the same
 * machine, and the least a hop in Node.js does (bench/fixtures/node-hop.mjs: Node's HTTP server
 * and kept-alive sockets, nothing else), what Node's machinery alone costs.
 *
 * Each row also reports the CPU time the hop (the gateway, or HAProxy), Redis (the admissions
 * the gateway causes) and the shim (with its runtimes) spent per call, read from /proc (Linux): on
 * a shared, noisy machine wall-clock numbers swing with the other work, CPU per call much less.
 *
 * Usage: node bench/dist/index.js gateway [--duration 8] [--warmup 2] [--callers 1,64]
 *   [--shim-concurrency 4] [--auth] [--targets gateway,haproxy,node-hop,direct,floor] [--cpu-prof dir] [--gateway-main path]
 *   [--out results.md]
 * `--cpu-prof dir` runs the gateway under `node --cpu-prof` and leaves the profile in `dir`;
 * `--gateway-main` measures another build of the gateway (an older commit's `gateway/dist/main.js`).
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ShimEnv, ShimPaths } from '@hearth/api';
import { freePort, startRedis } from '@hearth/test';
import { repoRoot } from '@hearth/test/conformance/peers';
import { GatewayFixture } from '@hearth/test/gateway/fixture';
import { spawnServer, type ServerProcess } from './server-process.js';

const benchDir = join(repoRoot, 'bench');
const handlerDir = join(benchDir, 'fixtures', 'noop');
const directServer = join(benchDir, 'fixtures', 'direct-server.mjs');
const nodeHop = join(benchDir, 'fixtures', 'node-hop.mjs');
const wrkScript = join(benchDir, 'wrk', 'post-json.lua');
const shimMain = join(repoRoot, 'runtime-shim', 'dist', 'main.cjs');
const gatewayMain = join(repoRoot, 'gateway', 'dist', 'main.js');
const BENCH_KEY = 'bench-key';

interface Row {
  label: string;
  callers: number;
  okPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  failed: number;
  /** CPU µs per successful call of the hop's (gateway or HAProxy), Redis's and the shim's process groups; undefined without /proc. */
  hopCpuUs: number | undefined;
  redisCpuUs: number | undefined;
  shimCpuUs: number | undefined;
}

/** Clock ticks per second of /proc's utime and stime: 100 on every Linux this runs on. */
const CLOCK_TICKS = 100;

/**
 * CPU time (µs) used so far by a server process and its descendants (the shim's runtimes), or
 * undefined where there is no /proc. Descendants that already exited are not counted; the
 * servers' processes live for the whole run.
 */
function treeCpuMicros(root: number | undefined): number | undefined {
  if (root === undefined) return undefined;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const processes = new Map<number, { parent: number; ticks: number }>();
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the command name (which may hold spaces): state ppid pgrp ... utime (12th) stime (13th).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    processes.set(Number(entry), {
      parent: Number(fields[1]),
      ticks: Number(fields[11]) + Number(fields[12]),
    });
  }
  let ticks = 0;
  for (const [pid, { ticks: own }] of processes) {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = processes.get(p)?.parent) {
      if (p === root) {
        ticks += own;
        break;
      }
    }
  }
  return (ticks * 1e6) / CLOCK_TICKS;
}

/** The pid of the process started with these arguments (the leader of its group), if /proc shows it. */
function findPid(match: (cmdline: string[], environ: string) => boolean): number | undefined {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8');
      if (match(cmdline, environ)) return Number(entry);
    } catch {
      continue;
    }
  }
  return undefined;
}

/** Why `command` cannot run here (not installed), or undefined when it can. */
function missingBinary(command: string, args: string[]): string | undefined {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      return `${command} is not installed (Debian package ${command})`;
    return undefined;
  }
}

/**
 * HAProxy in front of the shim as the gateway stands in front of it: HTTP keep-alive on both
 * sides, one thread, and at most `perInstance` calls at once on the shim (the rest queue in
 * HAProxy, as they wait in the gateway's router).
 */
function haproxyConfigText(port: number, shimPort: number, perInstance: number): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 4096',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout queue 30s',
    '  option http-keep-alive',
    '  http-reuse always',
    'frontend calls',
    `  bind 127.0.0.1:${port}`,
    '  default_backend shim',
    'backend shim',
    `  server shim 127.0.0.1:${shimPort} maxconn ${perInstance}`,
    '',
  ].join('\n');
}

function runWrk(
  url: string,
  callers: number,
  seconds: number,
  headers: string[],
): { okPerSecond: number; p50Ms: number; p99Ms: number; failed: number } {
  const output = execFileSync(
    'wrk',
    [
      '-t1',
      `-c${callers}`,
      `-d${seconds}s`,
      '--timeout',
      '10s',
      ...headers.flatMap((h) => ['-H', h]),
      '-s',
      wrkScript,
      url,
    ],
    {
      encoding: 'utf8',
    },
  );
  const line = output.split('\n').find((l) => l.startsWith('WRK_RESULT '));
  if (!line) throw new Error(`wrk printed no result:\n${output}`);
  const r = JSON.parse(line.slice('WRK_RESULT '.length)) as Record<string, number>;
  return {
    okPerSecond: (r.requests! - r.statusErrors!) / (r.durationUs! / 1e6),
    p50Ms: r.p50Us! / 1000,
    p99Ms: r.p99Us! / 1000,
    failed: r.statusErrors! + r.connectErrors! + r.readErrors! + r.writeErrors! + r.timeouts!,
  };
}

function micros(value: number | undefined): string {
  return value === undefined ? '-' : value.toFixed(0);
}

async function untilAnswers(url: string, processes: ServerProcess[], headers: Record<string, string> = {}) {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const ok = await fetch(url, { method: 'POST', body: '{}', headers }).then(
      async (r) => (await r.arrayBuffer(), r.status === 200),
      () => false,
    );
    if (ok) return;
    const dead = processes.find((p) => p.hasExited());
    if (dead) throw new Error(`${dead.name} exited:\n${dead.logs()}`);
    await sleep(20);
  }
  throw new Error(`${url} never answered 200:\n${processes.map((p) => p.logs()).join('\n')}`);
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '8' },
      warmup: { type: 'string', default: '2' },
      callers: { type: 'string', default: '1,64' },
      'shim-concurrency': { type: 'string', default: '4' },
      auth: { type: 'boolean', default: false },
      targets: { type: 'string', default: 'gateway,haproxy,node-hop,direct,floor' },
      'cpu-prof': { type: 'string' },
      'gateway-main': { type: 'string' },
      out: { type: 'string' },
    },
  });
  const duration = Number(values.duration);
  const warmup = Number(values.warmup);
  const callerCounts = values.callers.split(',').map(Number);
  const shimConcurrency = Number(values['shim-concurrency']);
  const wanted = new Set(values.targets.split(','));
  const cpuProfDir = values['cpu-prof'] === undefined ? undefined : resolve(values['cpu-prof']);
  const gatewayProgram = values['gateway-main'] === undefined ? gatewayMain : resolve(values['gateway-main']);
  const stateDir = await mkdtemp(join(tmpdir(), 'hearth-bench-gateway-'));
  const processes: ServerProcess[] = [];
  const redis = await startRedis();
  // Plays the controller: writes the function and its one instance into the registry.
  const registry = new GatewayFixture(redis.url);
  try {
    const [shimPort, gatewayPort, floorPort, haproxyPort, nodeHopPort] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const shim = spawnServer({
      logDir: stateDir,
      name: 'hearth-shim',
      command: process.execPath,
      args: [shimMain],
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        [ShimEnv.functionName]: 'noop',
        [ShimEnv.revision]: 'r1',
        [ShimEnv.runtime]: 'nodejs20.x',
        [ShimEnv.handler]: 'index.handler',
        [ShimEnv.codeDir]: handlerDir,
        [ShimEnv.host]: '127.0.0.1',
        [ShimEnv.port]: String(shimPort),
        [ShimEnv.concurrency]: String(shimConcurrency),
        [ShimEnv.isolation]: 'portable',
        [ShimEnv.stateDir]: join(stateDir, 'shim'),
        [ShimEnv.logLevel]: 'info',
      },
    });
    processes.push(shim);
    await registry.addFunction({
      name: 'noop',
      source: '',
      spec: { concurrency: { perInstance: shimConcurrency } },
    });
    await registry.setInstance({
      id: 'noop-1',
      function: 'noop',
      revision: 'r1',
      url: `http://127.0.0.1:${shimPort}`,
      ready: true,
      draining: false,
    });
    const gateway = spawnServer({
      logDir: stateDir,
      name: 'hearth-gateway',
      command: process.execPath,
      args: [
        ...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : []),
        gatewayProgram,
        `--port=${gatewayPort}`,
        '--host=127.0.0.1',
        `--redis-url=${redis.url}`,
        '--role=http',
        '--log-level=warn',
        ...(values.auth ? [`--api-keys=${BENCH_KEY}`] : ['--auth=false']),
      ],
      env: { PATH: process.env.PATH, HOME: process.env.HOME },
    });
    processes.push(gateway);
    const floor = spawnServer({
      logDir: stateDir,
      name: 'floor',
      command: process.execPath,
      args: [directServer],
      env: {
        PATH: process.env.PATH,
        SERVER_PORT: String(floorPort),
        HANDLER_MODULE: join(handlerDir, 'index.mjs'),
      },
    });
    processes.push(floor);
    const haproxyConfig = join(stateDir, 'haproxy.cfg');
    const haproxyMissing = wanted.has('haproxy') ? missingBinary('haproxy', ['-v']) : undefined;
    if (wanted.has('haproxy') && !haproxyMissing) {
      await writeFile(haproxyConfig, haproxyConfigText(haproxyPort, shimPort, shimConcurrency));
      processes.push(
        spawnServer({
          logDir: stateDir,
          name: 'haproxy',
          command: 'haproxy',
          args: ['-db', '-f', haproxyConfig],
          env: { PATH: process.env.PATH },
        }),
      );
    }

    if (wanted.has('node-hop')) {
      processes.push(
        spawnServer({
          logDir: stateDir,
          name: 'node-hop',
          command: process.execPath,
          args: [nodeHop],
          env: {
            PATH: process.env.PATH,
            SERVER_PORT: String(nodeHopPort),
            SHIM_PORT: String(shimPort),
            MAX_IN_FLIGHT: String(shimConcurrency),
          },
        }),
      );
    }

    const authHeaders: Record<string, string> = values.auth ? { authorization: `Bearer ${BENCH_KEY}` } : {};
    const gatewayPid = findPid(
      (cmdline) => cmdline.includes(gatewayProgram) && cmdline.includes(`--port=${gatewayPort}`),
    );
    const shimPid = findPid(
      (cmdline, environ) => cmdline.includes(shimMain) && environ.includes(`${ShimEnv.port}=${shimPort}\0`),
    );
    const nodeHopPid = findPid(
      (cmdline, environ) => cmdline.includes(nodeHop) && environ.includes(`SERVER_PORT=${nodeHopPort}\0`),
    );
    const haproxyPid = haproxyMissing
      ? undefined
      : findPid((cmdline) => cmdline[0] === 'haproxy' && cmdline.includes(haproxyConfig));
    const allTargets = [
      {
        key: 'gateway',
        label: 'gateway + shim + Node runtime',
        url: `http://127.0.0.1:${gatewayPort}/2015-03-31/functions/noop/invocations`,
        headers: authHeaders,
        hopPid: gatewayPid,
      },
      {
        key: 'haproxy',
        label: `HAProxy (reference hop, ${shimConcurrency} calls at once to the shim) + shim + Node runtime`,
        url: `http://127.0.0.1:${haproxyPort}${ShimPaths.invoke}`,
        headers: {},
        hopPid: haproxyPid,
      },
      {
        key: 'node-hop',
        label: `least Node.js hop (reference, ${shimConcurrency} calls at once to the shim) + shim + Node runtime`,
        url: `http://127.0.0.1:${nodeHopPort}/`,
        headers: {},
        hopPid: nodeHopPid,
      },
      {
        key: 'direct',
        label: 'shim + Node runtime (direct)',
        url: `http://127.0.0.1:${shimPort}${ShimPaths.invoke}`,
        headers: {},
        hopPid: undefined,
      },
      {
        key: 'floor',
        label: 'plain Node server (floor)',
        url: `http://127.0.0.1:${floorPort}/`,
        headers: {},
        hopPid: undefined,
      },
    ];
    const targets = allTargets.filter((t) => wanted.has(t.key) && !(t.key === 'haproxy' && haproxyMissing));
    for (const target of targets) await untilAnswers(target.url, processes, target.headers);

    const rows: Row[] = [];
    for (const callers of callerCounts) {
      for (const target of targets) {
        const headers = Object.entries(target.headers).map(([k, v]) => `${k}: ${v}`);
        runWrk(target.url, callers, warmup, headers);
        const hopBefore = treeCpuMicros(target.hopPid);
        const redisBefore = treeCpuMicros(redis.process.pid);
        const shimBefore = treeCpuMicros(shimPid);
        const result = runWrk(target.url, callers, duration, headers);
        const calls = result.okPerSecond * duration;
        const perCall = (before: number | undefined, after: number | undefined) =>
          before === undefined || after === undefined || calls === 0 ? undefined : (after - before) / calls;
        const row: Row = {
          label: target.label,
          callers,
          ...result,
          hopCpuUs: perCall(hopBefore, treeCpuMicros(target.hopPid)),
          redisCpuUs: perCall(redisBefore, treeCpuMicros(redis.process.pid)),
          shimCpuUs: perCall(shimBefore, treeCpuMicros(shimPid)),
        };
        rows.push(row);
        console.error(
          `  ${target.label} x${callers}: ${result.okPerSecond.toFixed(0)} ok/s, p50 ${result.p50Ms.toFixed(3)} ms, ` +
            `CPU/call hop ${micros(row.hopCpuUs)} µs, redis ${micros(row.redisCpuUs)} µs, shim ${micros(row.shimCpuUs)} µs`,
        );
      }
    }

    const lines = [
      `Gateway benchmark: no-op Node handler, ${duration} s per row after ${warmup} s warm-up, shim concurrency ${shimConcurrency}, auth ${values.auth ? 'Bearer' : 'off'}.`,
      '',
      '| target | callers | ok/s | p50 ms | p99 ms | failed | hop CPU µs/call | redis CPU µs/call | shim CPU µs/call |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows.map(
        (r) =>
          `| ${r.label} | ${r.callers} | ${r.okPerSecond.toFixed(0)} | ${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} | ${r.failed} | ${micros(r.hopCpuUs)} | ${micros(r.redisCpuUs)} | ${micros(r.shimCpuUs)} |`,
      ),
      '',
    ];
    for (const callers of callerCounts) {
      const via = rows.find((r) => r.callers === callers && r.label.startsWith('gateway'));
      const reference = rows.find((r) => r.callers === callers && r.label.startsWith('HAProxy'));
      const leastNode = rows.find((r) => r.callers === callers && r.label.startsWith('least Node.js hop'));
      const direct = rows.find((r) => r.callers === callers && r.label.includes('direct'));
      if (!via || !direct) continue;
      const hop = (row: Row) => (row.p50Ms - direct.p50Ms).toFixed(3);
      const share = (row: Row) => `${((100 * row.okPerSecond) / direct.okPerSecond).toFixed(0)}%`;
      const beside = (name: string, row: Row | undefined) =>
        row ? `; ${name} ${hop(row)} ms, ${share(row)} of direct` : '';
      lines.push(
        `- ${callers} caller(s): gateway hop ${hop(via)} ms at p50 (goal <= 1 ms), ` +
          `${share(via)} of direct-to-shim throughput (goal >= 60%)` +
          beside("HAProxy's hop", reference) +
          beside("the least Node.js hop's", leastNode),
      );
    }
    if (haproxyMissing) lines.push(`- Not measured: HAProxy (reference hop): ${haproxyMissing}.`);
    const table = lines.join('\n');
    console.log(table);
    if (values.out) await writeFile(values.out, `${table}\n`);
  } finally {
    await Promise.all(processes.map((p) => p.stop()));
    await registry.stop();
    await redis.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}
