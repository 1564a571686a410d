import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { pino } from 'pino';
import { Limits } from '@hearth/api/lambda';
import { parseConfig, ConfigError, runtimeCapacities } from './config.js';
import { DeferredLogger } from './deferred-logger.js';
import { pickSlot } from './dispatcher.js';
import { exitDescription } from './errors.js';
import { chooseIsolation, launchCommand, ownGroupPath } from './isolation.js';
import { billedDurationMs, LineSplitter, logTail, reportLine, tagLine } from './log-format.js';
import { RESPONSE_LIMIT_BYTES } from './runtimes/nodejs/runtime-api.js';
import { functionErrorOutcome } from './runtime-slot.js';
import { nodeHeapLimitMb, runtimeCommand, runtimeEnvironment } from './runtime-command.js';

const BASE = {
  HEARTH_FUNCTION_NAME: 'f',
  HEARTH_RUNTIME: 'nodejs20.x',
  HEARTH_HANDLER: 'index.handler',
  HEARTH_CODE_DIR: '/srv/code',
};

test('config: defaults as on Lambda, the function env is everything not HEARTH_', () => {
  const config = parseConfig({ ...BASE, PATH: '/bin', MY_VAR: 'x' });
  assert.equal(config.memoryMb, 128);
  assert.equal(config.timeoutSeconds, 3);
  assert.equal(config.ephemeralStorageMb, 512);
  assert.equal(config.concurrency, 1);
  assert.equal(config.functionVersion, '$LATEST');
  assert.equal(config.tmpDir, undefined, 'a TMPDIR of its own per runtime');
  assert.deepEqual(config.functionEnv, { PATH: '/bin', MY_VAR: 'x' });
});

test('config: calls per runtime split the instance into runtimes, the last one taking what is left', () => {
  const config = parseConfig({ ...BASE, HEARTH_CONCURRENCY: '5', HEARTH_PER_RUNTIME_CONCURRENCY: '2' });
  assert.equal(config.perRuntime, 2);
  assert.deepEqual(runtimeCapacities(config), [2, 2, 1]);
  assert.deepEqual(runtimeCapacities(parseConfig({ ...BASE, HEARTH_CONCURRENCY: '3' })), [1, 1, 1]);
  assert.deepEqual(runtimeCapacities({ concurrency: 2, perRuntime: 8 }), [2]);
  const provided = parseConfig({
    ...BASE,
    HEARTH_RUNTIME: 'provided.al2023',
    HEARTH_PER_RUNTIME_CONCURRENCY: '4',
  });
  assert.equal(provided.perRuntime, 4);
  // 256 calls at once fit in 4 runtimes of 64, not in 256 of one.
  const wide = parseConfig({ ...BASE, HEARTH_CONCURRENCY: '256', HEARTH_PER_RUNTIME_CONCURRENCY: '64' });
  assert.deepEqual(runtimeCapacities(wide), [64, 64, 64, 64]);
});

test('config: each bad setting names its variable and what it accepts', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [
      { HEARTH_RUNTIME: 'java8' },
      /^HEARTH_RUNTIME: must be one of nodejs20.x, nodejs22.x, python3.11, provided.al2023/,
    ],
    [
      { HEARTH_TIMEOUT_SECONDS: '901' },
      /^HEARTH_TIMEOUT_SECONDS: must be an integer from 1 to 900, got "901"/,
    ],
    [
      { HEARTH_EPHEMERAL_STORAGE_MB: '100' },
      /^HEARTH_EPHEMERAL_STORAGE_MB: must be an integer from 512 to 10240/,
    ],
    [{ HEARTH_MEMORY_MB: '1.5' }, /^HEARTH_MEMORY_MB: must be an integer/],
    [{ HEARTH_CODE_DIR: 'relative/dir' }, /^HEARTH_CODE_DIR: must be an absolute path/],
    [{ HEARTH_FUNCTION_NAME: '' }, /^HEARTH_FUNCTION_NAME: is required/],
    [{ HEARTH_CONCURRENCY: '0' }, /^HEARTH_CONCURRENCY: must be an integer from 1 to 1000/],
    [
      { HEARTH_CONCURRENCY: '65' },
      /^HEARTH_CONCURRENCY: needs 65 runtime processes at 1 call\(s\) each \(HEARTH_PER_RUNTIME_CONCURRENCY\), at most 64/,
    ],
    [{ HEARTH_ISOLATION: 'strict' }, /^HEARTH_ISOLATION: must be one of auto, portable/],
    [
      { HEARTH_PER_RUNTIME_CONCURRENCY: '1001' },
      /^HEARTH_PER_RUNTIME_CONCURRENCY: must be an integer from 1 to 1000/,
    ],
    [
      { HEARTH_RUNTIME: 'python3.11', HEARTH_HANDLER: 'app.handler', HEARTH_PER_RUNTIME_CONCURRENCY: '2' },
      /^HEARTH_PER_RUNTIME_CONCURRENCY: must be 1 for python3.11, whose runtime takes one call at a time: raise HEARTH_CONCURRENCY instead/,
    ],
    [{ HEARTH_TMP_DIR: 'tmp' }, /^HEARTH_TMP_DIR: must be an absolute path/],
    [{ HEARTH_TMP_DIR: '/' }, /^HEARTH_TMP_DIR: must be an absolute path other than \//],
    [
      { HEARTH_RUNTIME_COMMAND: '["/entry"]' },
      /^HEARTH_RUNTIME_COMMAND: is only for HEARTH_RUNTIME=provided/,
    ],
    [
      { HEARTH_RUNTIME: 'provided.al2023', HEARTH_RUNTIME_COMMAND: '/entry app.handler' },
      /^HEARTH_RUNTIME_COMMAND: must be a JSON array of strings/,
    ],
  ];
  for (const [override, message] of cases) {
    assert.throws(
      () => parseConfig({ ...BASE, ...override }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, message);
        return true;
      },
    );
  }
});

test('runtime command and environment follow Lambda', () => {
  const config = parseConfig({ ...BASE, HEARTH_MEMORY_MB: '1024', AWS_REGION: 'ignored', FOO: 'bar' });
  const command = runtimeCommand(config);
  assert.equal(command.command, process.execPath);
  assert.deepEqual(command.args[0], `--max-old-space-size=${nodeHeapLimitMb(1024)}`);
  assert.match(command.args[1]!, /runtimes\/nodejs\/bootstrap\.cjs$/);
  const env = runtimeEnvironment(config, { runtimeApi: '127.0.0.1:1', runtimeDir: '/rt', logStream: 's' });
  assert.equal(env.FOO, 'bar');
  assert.equal(env.AWS_REGION, 'us-east-1', 'reserved variables win over the function env');
  assert.equal(env.AWS_EXECUTION_ENV, 'AWS_Lambda_nodejs20.x');
  assert.equal(env.LAMBDA_TASK_ROOT, '/srv/code');
  assert.equal(env.AWS_LAMBDA_RUNTIME_API, '127.0.0.1:1');
  assert.equal(command.waitsForTmp, true);
  // The function's NODE_* come renamed (the shim's own Node must not act on them).
  const withNodeOptions = parseConfig({
    ...BASE,
    NODE_OPTIONS: '--max-old-space-size=64',
    HEARTH_ENV_NODE_OPTIONS: '--require ./tracer.js',
  });
  const runtimeEnv = runtimeEnvironment(withNodeOptions, {
    runtimeApi: 'a',
    runtimeDir: 'b',
    logStream: 'c',
  });
  assert.equal(runtimeEnv.NODE_OPTIONS, '--require ./tracer.js');
  assert.equal(runtimeEnv.HEARTH_ENV_NODE_OPTIONS, undefined);
  assert.equal(runtimeCommand(withNodeOptions).waitsForTmp, false, 'NODE_OPTIONS may load code: /tmp first');
  const provided = parseConfig({ ...BASE, HEARTH_RUNTIME: 'provided.al2023' });
  assert.equal(runtimeCommand(provided).command, '/srv/code/bootstrap');
  const image = parseConfig({
    ...BASE,
    HEARTH_RUNTIME: 'provided.al2023',
    HEARTH_RUNTIME_COMMAND: '["/lambda-entrypoint.sh","app.handler"]',
  });
  assert.deepEqual(runtimeCommand(image), {
    command: '/lambda-entrypoint.sh',
    args: ['app.handler'],
    runtimeDir: '/srv/code',
  });
  assert.equal(
    runtimeEnvironment(provided, { runtimeApi: 'a', runtimeDir: 'b', logStream: 'c' }).AWS_EXECUTION_ENV,
    undefined,
  );
  assert.match(
    runtimeCommand({ ...provided, runtime: 'python3.11' }).args[0]!,
    /runtimes\/python3\/bootstrap\.py$/,
  );
});

test('isolation: the strongest the host allows, portable when asked or not root', () => {
  const root = { isRoot: true, cgroupV1Parent: '/sys/fs/cgroup/memory', hasUnshare: true, hasMkfsExt4: true };
  assert.deepEqual(chooseIsolation('auto', root), { memory: 'cgroup-v1', tmp: 'loop-mount' });
  assert.deepEqual(chooseIsolation('portable', root), { memory: 'rss-polling', tmp: 'directory' });
  assert.deepEqual(chooseIsolation('auto', { ...root, isRoot: false }), {
    memory: 'rss-polling',
    tmp: 'directory',
  });
  assert.deepEqual(
    chooseIsolation('auto', {
      isRoot: true,
      cgroupV2Parent: '/sys/fs/cgroup',
      hasUnshare: false,
      hasMkfsExt4: true,
    }),
    {
      memory: 'cgroup-v2',
      tmp: 'directory',
    },
  );
});

test("isolation: the shim's own group, in the memory hierarchy or the unified one", () => {
  const v1Host = '12:pids:/a\n4:cpu,memory:/process_api/f00\n1:name=systemd:/\n0::/\n';
  assert.equal(ownGroupPath(v1Host, 'v1'), '/process_api/f00');
  assert.equal(ownGroupPath('0::/kubepods/pod1/c2\n', 'v2'), '/kubepods/pod1/c2');
  assert.equal(ownGroupPath('0::/\n', 'v2'), '/');
  assert.equal(ownGroupPath('0::/only-unified\n', 'v1'), undefined);
  assert.equal(ownGroupPath('4:memory:\n', 'v1'), undefined);
});

test('launch command: makes /tmp when asked, joins the cgroup and mounts /tmp before becoming the runtime', () => {
  const target = { command: '/code/bootstrap', args: ['a'] };
  assert.deepEqual(launchCommand(target, {}), target);
  const sandbox = { cgroupProcsFile: '/cg/cgroup.procs', tmpImage: '/state/tmp.ext4', tmpImageMb: 512 };
  const fresh = launchCommand(target, { ...sandbox, newTmpImage: true });
  assert.equal(fresh.command, 'unshare');
  assert.deepEqual(fresh.args.slice(0, 4), ['-m', '--propagation', 'private', 'sh']);
  assert.deepEqual(fresh.args.slice(-9), [
    'hearth-launch',
    '/cg/cgroup.procs',
    '/state/tmp.ext4',
    '',
    '512',
    '1',
    '',
    '/code/bootstrap',
    'a',
  ]);
  const kept = launchCommand(target, { ...sandbox, newTmpImage: false });
  assert.deepEqual(kept.args.slice(-5, -2), ['512', '', '']);
  const early = launchCommand({ ...target, waitsForTmp: true }, sandbox);
  assert.equal(early.args.at(-3), '1', 'a bootstrap that waits for /tmp may start beside the mount');
  const cgroupOnly = launchCommand(target, { cgroupProcsFile: '/cg/cgroup.procs' });
  assert.equal(cgroupOnly.command, 'sh');
});

test('log format: REPORT, tagging, tail bytes, lines across chunks', () => {
  assert.equal(
    reportLine({
      requestId: 'r',
      durationMs: 1.234,
      memorySizeMb: 128,
      maxMemoryUsedMb: 60,
      initDurationMs: 150,
    }),
    'REPORT RequestId: r\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 60 MB\tInit Duration: 150.00 ms\t\n',
  );
  assert.equal(billedDurationMs(0.2), 1);
  assert.equal(billedDurationMs(3), 3);
  const now = new Date('2024-01-02T03:04:05.678Z');
  assert.equal(tagLine('hi', 'r1', now), '2024-01-02T03:04:05.678Z\tr1\thi\n');
  assert.equal(tagLine('x\tr1\tINFO\thi', 'r1', now), 'x\tr1\tINFO\thi\n');
  assert.equal(tagLine('init line', undefined, now), 'init line\n');
  assert.equal(
    Buffer.from(logTail(['a'.repeat(5000), 'END\n'], 4096), 'base64').toString(),
    'a'.repeat(4092) + 'END\n',
  );
  const lines = new LineSplitter();
  assert.deepEqual(lines.push('one\ntw'), ['one']);
  assert.deepEqual(lines.push('o\nthree'), ['two']);
  assert.equal(lines.flush(), 'three');
});

test('errors: Go-style exit wording; error reports kept as-is or wrapped', () => {
  assert.equal(exitDescription(1, null), 'exit status 1');
  assert.equal(exitDescription(null, 'SIGKILL'), 'signal: killed');
  assert.equal(exitDescription(null, 'SIGSEGV'), 'signal: segmentation fault');
  const asIs = functionErrorOutcome(Buffer.from('{"errorType":"TypeError","errorMessage":"x"}'), undefined);
  assert.equal(asIs.errorType, 'TypeError');
  assert.equal(asIs.body.toString(), '{"errorType":"TypeError","errorMessage":"x"}');
  const wrapped = functionErrorOutcome(Buffer.from('plain text'), 'Custom.Error');
  assert.deepEqual(JSON.parse(wrapped.body.toString()), {
    errorType: 'Custom.Error',
    errorMessage: 'plain text',
  });
});

test('dispatch prefers a warm slot over one still starting', () => {
  const slots = [
    { name: 'busy', busy: true, warm: false },
    { name: 'starting', busy: false, warm: false },
    { name: 'warm', busy: false, warm: true },
  ];
  assert.equal(pickSlot(slots)?.name, 'warm');
  assert.equal(pickSlot(slots.slice(0, 2))?.name, 'starting');
  assert.equal(pickSlot(slots.slice(0, 1)), undefined);
});

test('start-up logs written before pino is attached come out in order, with their bindings', () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const logger = new DeferredLogger();
  const slot = logger.child({ slot: 0 });
  logger.info({ memory: 'cgroup-v1' }, 'isolation chosen');
  slot.debug('hidden below the level');
  slot.warn({ pid: 42 }, 'runtime started');
  assert.equal(lines.length, 0);

  logger.attach(pino({ level: 'info', base: { name: 'shim' } }, sink));
  slot.error('after attach');
  logger.child({ slot: 1 }).info('a child made after attach');
  const seen = lines.map(({ msg, slot, pid, memory, name }) => ({ msg, slot, pid, memory, name }));
  assert.deepEqual(seen, [
    { msg: 'isolation chosen', slot: undefined, pid: undefined, memory: 'cgroup-v1', name: 'shim' },
    { msg: 'runtime started', slot: 0, pid: 42, memory: undefined, name: 'shim' },
    { msg: 'after attach', slot: 0, pid: undefined, memory: undefined, name: 'shim' },
    { msg: 'a child made after attach', slot: 1, pid: undefined, memory: undefined, name: 'shim' },
  ]);
});

test("the Node runtime's response limit is Lambda's, as the Runtime API enforces it", () => {
  assert.equal(RESPONSE_LIMIT_BYTES, Limits.responseBytes);
});
