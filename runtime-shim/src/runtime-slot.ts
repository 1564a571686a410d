import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { FunctionErrorType, Limits } from '@hearth/api/lambda';
import type { ShimConfig } from './config.js';
import { nodeCrypto } from './deferred-builtins.js';
import type { ShimLogger } from './deferred-logger.js';
import {
  ephemeralStorageFull,
  initTimedOut,
  LambdaError,
  responseTooLarge,
  runtimeExited,
  timedOut,
} from './errors.js';
import { launchCommand, RssMeter, type MemoryMeter, type Sandbox } from './isolation.js';
import {
  billedDurationMs,
  endLine,
  LineSplitter,
  logTail,
  reportLine,
  startLine,
  tagLine,
} from './log-format.js';
import {
  startRuntimeApi,
  type ParkedNext,
  type ReportOutcome,
  type RuntimeApi,
  type RuntimeApiHandler,
} from './runtime-api.js';
import { logStreamName, runtimeCommand, runtimeEnvironment } from './runtime-command.js';

export interface InvokeRequest {
  requestId: string;
  event: Buffer;
  /** Absolute epoch ms by which the caller needs the answer (Infinity: only the function's timeout). */
  deadlineMs: number;
  invokedFunctionArn: string;
  traceId?: string;
  /** Decoded client context JSON. */
  clientContext?: string;
  cognitoIdentity?: string;
  wantsLogTail: boolean;
}

export interface InvokeResult {
  body: Buffer;
  /** Set when the function failed: the errorType of the body. */
  errorType?: string;
  /** Only on a cold start. */
  initDurationMs?: number;
  durationMs: number;
  billedDurationMs: number;
  maxMemoryUsedMb: number;
  /** Base64 of the last 4 KB of the invocation's log, when asked for. */
  logTail?: string;
}

/** Where the function's log stream goes (the shim's stdout). */
export interface LogSink {
  write(text: string): unknown;
  /**
   * Called when an invocation's log is complete (after REPORT): a buffering sink writes it out,
   * after the invocation's answer has gone.
   */
  invocationEnded?(): void;
}

type Outcome = { body: Buffer; errorType?: string };

interface Invocation {
  request: InvokeRequest;
  resolve: (result: InvokeResult) => void;
  delivered: boolean;
  /** No report is taken any more: the answer is decided. */
  settled: boolean;
  startedAt: number;
  timer?: NodeJS.Timeout;
  initDurationMs?: number;
  logChunks?: string[];
}

/** Why the shim killed a runtime: decides what its exit means. */
type KillReason = 'timeout' | 'out-of-memory' | 'tmp-full' | 'init-failed' | 'shutdown';

interface RuntimeProcess {
  child: ChildProcess;
  pid: number;
  spawnedAt: number;
  killReason?: KillReason;
  oomKillsAtStart: number;
  exited: Promise<void>;
}

type Phase = 'cold' | 'starting' | 'initializing' | 'ready' | 'failed' | 'stopped';

const MB = 1024 * 1024;
const POLL_INTERVAL_MS = 50;
/** Directory /tmp sizes are walked less often than memory is sampled. */
const TMP_POLL_EVERY = 5;

/**
 * One execution environment: a language runtime process, the Runtime API it talks to, and the
 * limits around it. It runs `capacity` invocations at once (1, as on Lambda, unless the function
 * asks for more: Lambda Managed Instances' AWS_LAMBDA_MAX_CONCURRENCY) and restarts its runtime
 * after a fault.
 */
export class RuntimeSlot implements RuntimeApiHandler {
  private phase: Phase = 'cold';
  private runtime: RuntimeProcess | undefined;
  /** Invocations given to the runtime (or answered in its place), by request id. */
  private readonly inFlight = new Map<string, Invocation>();
  /** Invocations taken, waiting for a `/next` of the runtime's. */
  private waitingDelivery: Invocation[] = [];
  /** The runtime's `/next` requests waiting for events (one per event it can take at once). */
  private parked: ParkedNext[] = [];
  /**
   * A call timed out while others ran beside it in the same runtime: it takes nothing more, and
   * is replaced once those have ended (each is bounded by its own deadline).
   */
  private draining = false;
  private initTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private pendingInitDurationMs: number | undefined;
  private initFailure: ((requestId: string) => Outcome) | undefined;
  private tmpNeedsWipe = false;
  /**
   * Recently finished ids, to tell a second report (403) from an unknown id (400), and lines about
   * an ended invocation from those of the one running.
   */
  private readonly finishedIds = new Set<string>();
  private readonly meter: MemoryMeter;
  private settleFirstInit!: () => void;
  /** Resolves once the first init has ended, well or not. */
  readonly firstInitSettled = new Promise<void>((resolve) => (this.settleFirstInit = resolve));

  private constructor(
    readonly index: number,
    private readonly capacity: number,
    private readonly config: ShimConfig,
    private readonly sandbox: Sandbox,
    private readonly api: RuntimeApi,
    private readonly sink: LogSink,
    private readonly logger: ShimLogger,
    /** Called whenever the slot can take another invocation. */
    private readonly onFree: (slot: RuntimeSlot) => void,
  ) {
    this.meter = sandbox.memoryMeter(() => this.runtime?.pid);
  }

  static async create(
    index: number,
    capacity: number,
    config: ShimConfig,
    sandbox: Sandbox,
    sink: LogSink,
    logger: ShimLogger,
    onFree: (slot: RuntimeSlot) => void,
  ): Promise<RuntimeSlot> {
    // The server needs its handler before the slot (which needs the server's address) exists.
    const bound: { slot?: RuntimeSlot } = {};
    const api = await startRuntimeApi({
      next: (response) => bound.slot!.next(response),
      canReport: (id) => bound.slot!.canReport(id),
      response: (id, body) => bound.slot!.response(id, body),
      responseTooLarge: (id) => bound.slot!.responseTooLarge(id),
      error: (id, body, type) => bound.slot!.error(id, body, type),
      initError: (body, type) => bound.slot!.initError(body, type),
    });
    bound.slot = new RuntimeSlot(
      index,
      capacity,
      config,
      sandbox,
      api,
      sink,
      logger.child({ slot: index }),
      onFree,
    );
    return bound.slot;
  }

  /** True when the slot has all the invocations it can take; a free slot takes the next one. */
  get busy(): boolean {
    return this.draining || this.inFlight.size + this.waitingDelivery.length >= this.capacity;
  }

  /** Free with a runtime already waiting for work: the fastest place for an invocation. */
  get warm(): boolean {
    return !this.busy && this.phase === 'ready' && this.runtime?.killReason === undefined;
  }

  /** Starts the runtime now, so the first invocation finds it warm. */
  async start(): Promise<void> {
    if (this.phase === 'stopped') return;
    this.phase = 'starting';
    if (this.runtime) await this.runtime.exited;
    this.sandbox.killStragglers();
    if (this.tmpNeedsWipe) {
      await this.sandbox.resetTmp();
      this.tmpNeedsWipe = false;
    }
    if (this.phase !== 'starting') return;
    await this.spawnRuntime();
  }

  private async spawnRuntime(): Promise<void> {
    const command = runtimeCommand(this.config);
    const launch = launchCommand(command, this.sandbox.launchSettings());
    const env = runtimeEnvironment(this.config, {
      runtimeApi: this.api.address,
      runtimeDir: command.runtimeDir,
      logStream: logStreamName(this.config.functionVersion),
      // The instance's own /tmp needs no TMPDIR: code finds it at /tmp, as on Lambda.
      tmpDir: this.sandbox.tmpIsShared ? undefined : this.sandbox.tmpDir,
    });
    // As on Lambda Managed Instances: the runtime may ask for this many events at once.
    if (this.capacity > 1) env.AWS_LAMBDA_MAX_CONCURRENCY = String(this.capacity);
    const oomKillsAtStart = this.meter.oomKills();
    const spawnedAt = performance.now();
    this.sandbox.primeGroupMove();
    const child = spawn(launch.command, launch.args, {
      cwd: this.config.codeDir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so that a kill reaches everything the runtime started.
      detached: true,
    });
    let markExited!: () => void;
    const exited = new Promise<void>((resolve) => (markExited = resolve));
    const runtime: RuntimeProcess = { child, pid: child.pid ?? -1, spawnedAt, oomKillsAtStart, exited };
    this.runtime = runtime;
    this.phase = 'initializing';
    for (const stream of [child.stdout!, child.stderr!]) {
      const lines = new LineSplitter();
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        for (const line of lines.push(chunk)) this.output(line);
      });
      stream.on('end', () => {
        const rest = lines.flush();
        if (rest !== undefined) this.output(rest);
      });
    }
    let exitSeen = false;
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      if (exitSeen) return;
      exitSeen = true;
      markExited();
      void this.runtimeExited(runtime, code, signal);
    };
    child.once('exit', onExit);
    child.once('error', (error) => {
      this.logger.error({ err: error, command: launch.command }, 'runtime could not start');
      onExit(127, null);
    });
    this.initTimer = setTimeout(() => {
      if (this.runtime !== runtime || this.phase !== 'initializing') return;
      this.kill(runtime, 'init-failed');
      this.failInit(runtime, () => {
        const error = initTimedOut(this.config.initTimeoutMs / 1000);
        return { body: error.toBody(), errorType: error.errorType };
      });
    }, this.config.initTimeoutMs);
    this.startPolling();
    this.logger.debug({ pid: runtime.pid }, 'runtime started');
  }

  /** Takes an invocation; resolves with its answer, whatever happens to the runtime. */
  invoke(request: InvokeRequest): Promise<InvokeResult> {
    return new Promise((resolve) => {
      const invocation: Invocation = { request, resolve, delivered: false, settled: false, startedAt: 0 };
      if (request.wantsLogTail) invocation.logChunks = [];
      if (this.phase === 'failed') {
        this.inFlight.set(request.requestId, invocation);
        this.answerInitFailure(invocation);
        return;
      }
      this.waitingDelivery.push(invocation);
      switch (this.phase) {
        case 'cold':
          void this.start();
          break;
        case 'ready':
          this.deliverAll();
          break;
        default:
        // Starting or initializing: the runtime's first /next picks it up.
      }
    });
  }

  // --- Runtime API ---

  next(next: ParkedNext): void {
    if (this.phase === 'initializing') {
      clearTimeout(this.initTimer);
      this.phase = 'ready';
      this.pendingInitDurationMs = performance.now() - this.runtime!.spawnedAt;
      this.settleFirstInit();
      // The warm runtime's memory, so that the first call's REPORT has it even if it is short.
      if (this.meter instanceof RssMeter) {
        this.meter.sample();
        this.meter.resetPeak();
      }
      this.logger.debug({ initDurationMs: this.pendingInitDurationMs }, 'runtime initialized');
    }
    if (this.phase !== 'ready' || this.runtime?.killReason !== undefined) {
      // A runtime being replaced gets nothing more: a killed one may still have a /next on its
      // way (sent with its last answer), and the call given to it would die with it.
      next.destroy();
      return;
    }
    this.parked.push(next);
    next.onClose(() => {
      this.parked = this.parked.filter((p) => p !== next);
    });
    this.deliverAll();
  }

  /** Pairs waiting invocations with the runtime's waiting `/next` requests. */
  private deliverAll(): void {
    while (!this.draining && this.waitingDelivery.length > 0 && this.parked.length > 0) {
      const invocation = this.waitingDelivery.shift()!;
      this.inFlight.set(invocation.request.requestId, invocation);
      this.deliver(invocation, this.parked.shift()!);
    }
  }

  canReport(requestId: string): ReportOutcome {
    const current = this.inFlight.get(requestId);
    if (current?.delivered) {
      return current.settled ? 'already-reported' : 'accepted';
    }
    return this.finishedIds.has(requestId) ? 'already-reported' : 'unknown-id';
  }

  response(requestId: string, body: Buffer): void {
    void this.complete(this.inFlight.get(requestId)!, { body }, { checkTmp: true });
    this.logger.trace({ requestId }, 'response reported');
  }

  responseTooLarge(requestId: string): void {
    const error = responseTooLarge();
    void this.complete(
      this.inFlight.get(requestId)!,
      { body: error.toBody(), errorType: error.errorType },
      { checkTmp: true },
    );
    this.logger.debug({ requestId }, 'response too large');
  }

  error(requestId: string, body: Buffer, errorTypeHeader: string | undefined): void {
    void this.complete(this.inFlight.get(requestId)!, functionErrorOutcome(body, errorTypeHeader), {
      checkTmp: true,
    });
    this.logger.trace({ requestId }, 'error reported');
  }

  initError(body: Buffer, errorTypeHeader: string | undefined): boolean {
    const runtime = this.runtime;
    if (this.phase !== 'initializing' || !runtime) return false;
    const outcome = functionErrorOutcome(body, errorTypeHeader);
    this.failInit(runtime, () => outcome);
    // Lambda's runtimes exit after reporting; the shim does not wait for that.
    this.kill(runtime, 'init-failed');
    return true;
  }

  // --- invocation lifecycle ---

  private output(line: string): void {
    const invocation = this.ownerOf(line);
    const text = tagLine(line, invocation?.request.requestId, new Date());
    this.sink.write(text);
    if (invocation?.logChunks) appendBounded(invocation.logChunks, text);
  }

  /** The invocation running, when at most one is. */
  private onlyRunning(): Invocation | undefined {
    const only: Invocation | undefined = this.inFlight.values().next().value;
    return only?.delivered ? only : undefined;
  }

  /**
   * A line belongs to the invocation whose request id it carries in Lambda's log record format
   * (`<time>\t<request id>\t<LEVEL>\t...`, as Hearth's and AWS's Node runtimes write); other
   * lines belong to the invocation running, only while it runs alone. A line naming one that has
   * ended (the runtime's word on a report the Runtime API refused comes after the answer) is not
   * the log of another that runs now.
   */
  private ownerOf(line: string): Invocation | undefined {
    const start = line.indexOf('\t') + 1;
    const end = start > 0 ? line.indexOf('\t', start) : -1;
    const named = end < 0 ? undefined : line.slice(start, end);
    if (named !== undefined) {
      const invocation = this.inFlight.get(named);
      if (invocation?.delivered) return invocation;
      if (this.finishedIds.has(named)) return undefined;
    }
    return this.inFlight.size <= 1 ? this.onlyRunning() : undefined;
  }

  private begin(invocation: Invocation): void {
    invocation.startedAt = performance.now();
    const text = startLine(invocation.request.requestId, this.config.functionVersion);
    this.sink.write(text);
    invocation.logChunks?.push(text);
  }

  private deliver(invocation: Invocation, next: ParkedNext): void {
    const now = Date.now();
    const timeoutMs = this.config.timeoutSeconds * 1000;
    const deadlineMs = Math.min(invocation.request.deadlineMs, now + timeoutMs);
    this.begin(invocation);
    invocation.delivered = true;
    invocation.initDurationMs = this.pendingInitDurationMs;
    this.pendingInitDurationMs = undefined;
    invocation.timer = setTimeout(() => this.deadlineReached(invocation, deadlineMs - now), deadlineMs - now);
    this.startPolling();
    next.send({
      requestId: invocation.request.requestId,
      body: invocation.request.event,
      deadlineMs,
      invokedFunctionArn: invocation.request.invokedFunctionArn,
      traceId: invocation.request.traceId ?? newTraceId(now),
      clientContext: invocation.request.clientContext,
      cognitoIdentity: invocation.request.cognitoIdentity,
    });
  }

  private deadlineReached(invocation: Invocation, allowedMs: number): void {
    if (this.inFlight.get(invocation.request.requestId) !== invocation || invocation.settled) return;
    // The runtime is replaced; calls running beside this one in it may finish first.
    if (this.othersRunning(invocation)) this.draining = true;
    else if (this.runtime) this.kill(this.runtime, 'timeout');
    const error = timedOut(invocation.request.requestId, allowedMs / 1000);
    void this.complete(invocation, { body: error.toBody(), errorType: error.errorType }, { checkTmp: false });
  }

  private othersRunning(invocation?: Invocation): boolean {
    for (const other of this.inFlight.values()) {
      if (other !== invocation && other.delivered && !other.settled) return true;
    }
    return false;
  }

  /** Ends an invocation: checks /tmp, writes END and REPORT, answers, frees the slot. */
  private async complete(
    invocation: Invocation,
    outcome: Outcome,
    options: { checkTmp: boolean },
  ): Promise<void> {
    if (this.inFlight.get(invocation.request.requestId) !== invocation || invocation.settled) return;
    invocation.settled = true;
    clearTimeout(invocation.timer);
    const runtime = this.runtime;
    const durationMs = performance.now() - invocation.startedAt;
    if (options.checkTmp && runtime && !runtime.killReason && (await this.sandbox.tmpFull(runtime.pid))) {
      outcome = this.tmpOverflow(invocation, runtime);
    }
    let maxMemoryUsedMb = Math.max(1, Math.ceil(this.meter.peakBytes() / MB));
    if (runtime?.killReason === 'out-of-memory')
      maxMemoryUsedMb = Math.max(maxMemoryUsedMb, this.config.memoryMb);
    this.finishedIds.add(invocation.request.requestId);
    if (this.finishedIds.size > 64) this.finishedIds.delete(this.finishedIds.values().next().value!);
    const requestId = invocation.request.requestId;
    const end = endLine(requestId);
    const report = reportLine({
      requestId,
      durationMs,
      memorySizeMb: this.config.memoryMb,
      maxMemoryUsedMb,
      initDurationMs: invocation.initDurationMs,
    });
    this.sink.write(end + report);
    this.sink.invocationEnded?.();
    const result: InvokeResult = {
      body: outcome.body,
      durationMs,
      billedDurationMs: billedDurationMs(durationMs),
      maxMemoryUsedMb,
    };
    if (outcome.errorType !== undefined) result.errorType = outcome.errorType;
    if (invocation.initDurationMs !== undefined) result.initDurationMs = invocation.initDurationMs;
    if (invocation.logChunks) {
      invocation.logChunks.push(end, report);
      result.logTail = logTail(invocation.logChunks, Limits.logTailBytes);
    }
    this.inFlight.delete(requestId);
    invocation.resolve(result);
    if (this.draining && runtime && !this.othersRunning()) this.kill(runtime, 'timeout');
    // A peak is per invocation only while one runs at a time; otherwise per stretch of work.
    if (this.inFlight.size === 0) this.meter.resetPeak();
    this.onFree(this);
  }

  private tmpOverflow(invocation: Invocation, runtime: RuntimeProcess): Outcome {
    this.tmpNeedsWipe = true;
    this.kill(runtime, 'tmp-full');
    const error = ephemeralStorageFull(invocation.request.requestId, this.config.ephemeralStorageMb);
    this.logger.warn(
      { requestId: invocation.request.requestId },
      '/tmp overflowed: runtime restarted with an empty /tmp',
    );
    return { body: error.toBody(), errorType: error.errorType };
  }

  /** Init ended without a runtime ready to work: the next (or waiting) invocation gets the failure. */
  private failInit(runtime: RuntimeProcess, failure: (requestId: string) => Outcome): void {
    clearTimeout(this.initTimer);
    this.pendingInitDurationMs = performance.now() - runtime.spawnedAt;
    this.initFailure = failure;
    this.phase = 'failed';
    this.settleFirstInit();
    for (const invocation of this.waitingDelivery.splice(0)) {
      this.inFlight.set(invocation.request.requestId, invocation);
      this.answerInitFailure(invocation);
    }
  }

  /** Answers with the stored init failure; the invocation after it starts a fresh runtime. */
  private answerInitFailure(invocation: Invocation): void {
    const failure = this.initFailure!;
    this.initFailure = undefined;
    this.phase = 'cold';
    this.begin(invocation);
    invocation.delivered = true;
    invocation.initDurationMs = this.pendingInitDurationMs;
    this.pendingInitDurationMs = undefined;
    void this.complete(invocation, failure(invocation.request.requestId), { checkTmp: false });
  }

  private kill(runtime: RuntimeProcess, reason: KillReason): void {
    runtime.killReason ??= reason;
    try {
      process.kill(-runtime.pid, 'SIGKILL');
    } catch {
      // already gone
    }
    for (const next of this.parked.splice(0)) next.destroy();
  }

  private async runtimeExited(runtime: RuntimeProcess, code: number | null, signal: NodeJS.Signals | null) {
    if (this.runtime !== runtime) return;
    // Whatever the runtime started goes with it.
    try {
      process.kill(-runtime.pid, 'SIGKILL');
    } catch {
      // the group is empty
    }
    this.runtime = undefined;
    this.parked = [];
    clearTimeout(this.initTimer);
    const reason = runtime.killReason;
    this.logger.info({ pid: runtime.pid, code, signal, reason }, 'runtime exited');
    if (this.phase === 'stopped' || reason === 'init-failed') return;
    const oom =
      reason === 'out-of-memory' || (signal === 'SIGKILL' && this.meter.oomKills() > runtime.oomKillsAtStart);
    const exit = { code, signal };
    const limit = oom ? { limitMb: this.config.memoryMb } : undefined;
    if (this.phase === 'initializing') {
      this.failInit(runtime, (requestId) => {
        const error = runtimeExited(requestId, exit, limit);
        return { body: error.toBody(), errorType: error.errorType };
      });
      return;
    }
    // Every call the runtime was running ends with it (the one that filled /tmp has its answer).
    for (const invocation of [...this.inFlight.values()]) {
      if (!invocation.delivered || invocation.settled) continue;
      const requestId = invocation.request.requestId;
      const error =
        reason === 'tmp-full'
          ? ephemeralStorageFull(requestId, this.config.ephemeralStorageMb)
          : runtimeExited(requestId, exit, limit);
      await this.complete(
        invocation,
        { body: error.toBody(), errorType: error.errorType },
        { checkTmp: false },
      );
    }
    if (this.draining) {
      this.draining = false;
      this.onFree(this);
    }
    // A fresh runtime right away: the next invocation pays init again, as on Lambda.
    await this.start();
  }

  // --- polling, only where the kernel does not enforce a limit ---

  /**
   * Samples while the runtime initializes or works, every 50 ms; one interval runs for a whole
   * busy stretch (not one per call) and stops at the first tick that finds the slot idle.
   */
  private startPolling(): void {
    const rss = this.meter instanceof RssMeter ? this.meter : undefined;
    const pollTmp = this.sandbox.tmpDir !== undefined;
    if (this.pollTimer || (!rss && !pollTmp)) return;
    let tick = 0;
    let sampling = false;
    this.pollTimer = setInterval(() => {
      const runtime = this.runtime;
      if (this.inFlight.size === 0 && this.phase !== 'initializing') {
        clearInterval(this.pollTimer);
        this.pollTimer = undefined;
        return;
      }
      if (sampling || !runtime || runtime.killReason) return;
      if (rss && rss.sample() > this.config.memoryMb * MB) {
        rss.kills++;
        this.logger.warn({ pid: runtime.pid }, 'runtime over its memory limit: killed');
        this.kill(runtime, 'out-of-memory');
        return;
      }
      const invocation = this.inFlight.values().next().value;
      if (pollTmp && invocation?.delivered && ++tick % TMP_POLL_EVERY === 0) {
        sampling = true;
        void this.sandbox
          .tmpFull(runtime.pid)
          .then((full) => {
            if (
              full &&
              !runtime.killReason &&
              invocation &&
              this.inFlight.get(invocation.request.requestId) === invocation
            ) {
              void this.complete(invocation, this.tmpOverflow(invocation, runtime), { checkTmp: false });
            }
          })
          .finally(() => (sampling = false));
      }
    }, POLL_INTERVAL_MS);
  }

  /** Kills the runtime and removes the sandbox; the in-flight invocation must be over first. */
  async stop(): Promise<void> {
    this.phase = 'stopped';
    clearTimeout(this.initTimer);
    clearInterval(this.pollTimer);
    const runtime = this.runtime;
    if (runtime) {
      this.kill(runtime, 'shutdown');
      await runtime.exited;
    }
    await this.api.close();
    await this.sandbox.destroy();
  }
}

/** A runtime's error report as the invocation's answer: its JSON as-is, its type from the header first. */
export function functionErrorOutcome(body: Buffer, errorTypeHeader: string | undefined): Outcome {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const bodyType = (parsed as { errorType?: unknown }).errorType;
    const errorType =
      errorTypeHeader || (typeof bodyType === 'string' ? bodyType : FunctionErrorType.unknown);
    return { body, errorType };
  }
  const error = new LambdaError(errorTypeHeader || FunctionErrorType.unknown, body.toString('utf8'));
  return { body: error.toBody(), errorType: error.errorType };
}

/** Keeps enough of an invocation's log for its 4 KB tail: 4096 characters hold at least 4096 bytes. */
function appendBounded(chunks: string[], text: string): void {
  chunks.push(text);
  if (chunks.length > 256) {
    const joined = chunks.join('');
    chunks.length = 0;
    chunks.push(joined.slice(-Limits.logTailBytes));
  }
}

/** Random bytes drawn in bulk: one trace id takes 20 of them, and refills are rare. */
const randomPool = Buffer.alloc(20 * 256);
let randomOffset = randomPool.length;

/** An X-Ray style trace id, as Lambda passes one even when tracing is off. */
function newTraceId(nowMs: number): string {
  if (randomOffset + 20 > randomPool.length) {
    nodeCrypto().randomFillSync(randomPool);
    randomOffset = 0;
  }
  const random = randomPool.toString('hex', randomOffset, (randomOffset += 20));
  return `Root=1-${Math.floor(nowMs / 1000).toString(16)}-${random.slice(0, 24)};Parent=${random.slice(24, 40)};Sampled=0`;
}
