import { randomUUID } from 'node:crypto';
import { eventSourceKind, functionArn } from '@hearth/api';
import {
  afterInvoke,
  backoffMs,
  batchLength,
  expireRecords,
  interpretOutcome,
  kinesisEvent,
  laneOf,
  newBatch,
  ReadOrder,
  responseOf,
  retryPolicy,
  streamFailureRecord,
  type BatchResult,
  type FailureCondition,
  type PendingBatch,
} from './batching.js';
import {
  JsonText,
  type InvokeOutcome,
  type MappingContext,
  type MappingRunner,
  type RecordSource,
  type SourceRecord,
} from './types.js';

export interface StreamRunnerOptions {
  /** First wait before a failed batch is sent again; doubles on each retry. Default 1000 ms. */
  retryBaseDelayMs?: number;
  /** Longest wait between two sends of a failed batch. Default 30,000 ms. */
  retryMaxDelayMs?: number;
}

/** Longest a read waits for a first record; new records end the wait at once. */
const READ_WAIT_MS = 1000;
/** Records read per call, at most (a batch of 10,000 is gathered over several reads). */
const MAX_READ_COUNT = 1000;
/** How often lag is measured and the checkpoint reported. */
const STATUS_INTERVAL_MS = 1000;
/** How long stop() waits for the batches in flight. */
const STOP_TIMEOUT_MS = 5000;

/** Resolves waiters when something they wait for may have happened (records arrived, room freed). */
class Wakeup {
  private readonly waiters = new Set<() => void>();

  notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  wait(timeoutMs = Infinity): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = Number.isFinite(timeoutMs) ? setTimeout(done, Math.max(0, timeoutMs)) : undefined;
      this.waiters.add(done);
    });
  }
}

/** One ordered lane: the records of the partition keys that hash to it, one batch at a time. */
interface Lane {
  index: number;
  queue: SourceRecord[];
  arrived: Wakeup;
}

/**
 * Runs a pull mapping over any RecordSource: reads in order, spreads records over
 * parallelizationFactor lanes by partition key, and sends each lane's records in batches, one
 * at a time and in order. A failing batch blocks its lane only, and is retried, bisected and
 * finally given up on as batching.ts decides. Records are acknowledged as they finish; those never
 * acknowledged (a stop mid-batch, a crash) are handed out again by the source: at least once.
 */
export function runStreamMapping(
  ctx: MappingContext,
  source: RecordSource,
  options: StreamRunnerOptions = {},
): MappingRunner {
  const { spec } = ctx;
  const labels = { mapping: ctx.name, function: spec.functionName, source: eventSourceKind(spec) };
  const log = ctx.logger.child({ mapping: ctx.id, function: spec.functionName });
  const policy = retryPolicy(spec, {
    retryBaseDelayMs: options.retryBaseDelayMs ?? 1000,
    retryMaxDelayMs: options.retryMaxDelayMs ?? 30_000,
  });
  const reportItemFailures = spec.functionResponseTypes.includes('ReportBatchItemFailures');
  const windowMs = spec.maximumBatchingWindowInSeconds * 1000;
  // Each lane holds its batch in flight plus up to two more: enough to send the next one at once,
  // bounded so that a blocked lane stops the reading instead of filling memory.
  const laneCapacity = 2 * spec.batchSize;
  const readCount = Math.min(spec.batchSize * spec.parallelizationFactor, MAX_READ_COUNT);
  const eventContext = { sourceArn: source.arn, region: ctx.region, accountId: ctx.accountId };
  const arn = functionArn(spec.functionName, ctx.region, ctx.accountId);

  const stopping = new AbortController();
  const stopped = () => stopping.signal.aborted;
  let sourceClosed = false;
  const lanes: Lane[] = Array.from({ length: spec.parallelizationFactor }, (_, index) => ({
    index,
    queue: [],
    arrived: new Wakeup(),
  }));
  const room = new Wakeup();
  const order = new ReadOrder();
  const acks = new Set<Promise<void>>();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopped()) return resolve();
      const done = () => {
        clearTimeout(timer);
        stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      stopping.signal.addEventListener('abort', done);
    });

  // Status: results and errors when they change, the checkpoint with the periodic lag measurement.
  let processingResult = '';
  let lastErrorReported = '';
  let positionReported: string | undefined;
  const reportResult = (result: string, error?: string) => {
    if (result === processingResult && (error === undefined || error === lastErrorReported)) return;
    processingResult = result;
    if (error !== undefined) lastErrorReported = error;
    ctx.reportStatus({ lastProcessingResult: result, ...(error !== undefined ? { lastError: error } : {}) });
  };
  const reportPosition = () => {
    const position = order.checkpoint();
    if (position === undefined || position === positionReported) return;
    positionReported = position;
    ctx.reportStatus({ lastProcessedPosition: position });
  };

  /** Checkpoints finished records (processed, or given up on and sent to the failure path). */
  const finish = (records: SourceRecord[]) => {
    // After a stop that timed out, the source is closed: these stay pending and come back.
    if (records.length === 0 || sourceClosed) return;
    for (const record of records) order.finish(record.sequence);
    const ack = source
      .ack(records)
      .catch((error: unknown) =>
        log.warn(
          { err: error, first: records[0]!.sequence, count: records.length },
          'could not acknowledge records; they will be delivered again',
        ),
      );
    acks.add(ack);
    void ack.finally(() => acks.delete(ack));
  };

  /** Records given up on: counted, their batch's metadata to the on-failure destination, then checkpointed. */
  async function giveUp(batch: PendingBatch, condition: FailureCondition): Promise<boolean> {
    const first = batch.records[0]!.sequence;
    const last = batch.records.at(-1)!.sequence;
    const destination = spec.destinationConfig.onFailure;
    log.warn(
      { condition, first, last, count: batch.records.length, invokes: batch.invokes, error: batch.lastError },
      destination
        ? 'gave up on records; sending them to the on-failure destination'
        : 'gave up on records; discarded them',
    );
    reportResult(
      `PROBLEM: ${condition}`,
      `${condition} for ${first}..${last}: ${batch.lastError ?? 'too old'}`,
    );
    if (destination) {
      const record = streamFailureRecord({
        batch,
        condition,
        functionArn: arn,
        streamArn: source.arn,
        requestId: randomUUID(),
        now: Date.now(),
      });
      // The records are checkpointed only once the destination has their metadata.
      for (let attempt = 1; ; attempt++) {
        try {
          await ctx.sendToDestination(destination, record);
          break;
        } catch (error) {
          if (stopped()) return false;
          log.warn(
            { err: error, first, last, attempt },
            'the on-failure destination did not take a record; retrying',
          );
          reportResult('PROBLEM: on-failure destination failed', (error as Error).message);
          await sleep(backoffMs(attempt, policy));
          if (stopped()) return false;
        }
      }
    }
    ctx.metrics.failures.inc(labels, batch.records.length);
    finish(batch.records);
    return true;
  }

  async function invoke(batch: PendingBatch): Promise<InvokeOutcome> {
    try {
      const event = new JsonText(kinesisEvent(batch.records, eventContext));
      return await ctx.invoker.invoke(spec.functionName, event);
    } catch (error) {
      return { kind: 'unavailable', message: (error as Error).message };
    }
  }

  const outcomeLabel = (result: BatchResult, outcome: InvokeOutcome) =>
    result.kind === 'functionError' ? 'error' : result.kind === 'stalled' ? outcome.kind : result.kind;

  /** Sends one batch until every record of it is finished, or the runner stops. */
  async function processBatch(records: SourceRecord[]): Promise<void> {
    const work: PendingBatch[] = [newBatch(records)];
    let delayMs = 0;
    while (work.length > 0) {
      if (delayMs > 0) await sleep(delayMs);
      if (stopped()) return;
      const { expired, fresh } = expireRecords(work.shift()!, spec.maximumRecordAgeInSeconds, Date.now());
      if (expired && !(await giveUp(expired, 'RecordAgeExceeded'))) return;
      delayMs = 0;
      if (!fresh) continue;
      if (fresh.invokes > 0) ctx.metrics.retries.inc(labels);
      const outcome = await invoke(fresh);
      const sent: PendingBatch = { ...fresh, invokes: fresh.invokes + 1, lastResponse: responseOf(outcome) };
      const result = interpretOutcome(outcome, sent.records, reportItemFailures);
      ctx.metrics.batches.inc({ ...labels, outcome: outcomeLabel(result, outcome) });
      const step = afterInvoke(sent, result, policy);
      finish(step.succeeded);
      if (result.kind === 'success') {
        log.debug({ first: sent.records[0]!.sequence, count: sent.records.length }, 'processed a batch');
        reportResult('OK');
      } else {
        const retry = step.next[0];
        const error = retry?.lastError ?? step.givenUp?.batch.lastError ?? result.kind;
        log.warn(
          {
            outcome: result.kind,
            first: sent.records[0]!.sequence,
            count: sent.records.length,
            succeeded: step.succeeded.length,
            bisected: step.next.length > 1,
            retryInMs: retry ? step.delayMs : undefined,
          },
          `a batch failed: ${error}`,
        );
        reportResult(
          result.kind === 'stalled' ? 'PROBLEM: Function call failed' : 'PROBLEM: Function error',
          `batch from ${sent.records[0]!.sequence}: ${error}`,
        );
      }
      if (step.givenUp && !(await giveUp(step.givenUp.batch, step.givenUp.condition))) return;
      work.unshift(...step.next);
      delayMs = step.delayMs;
    }
  }

  /** The next batch of a lane: what is there, or up to the batching window's worth. */
  async function gather(lane: Lane): Promise<SourceRecord[] | undefined> {
    while (lane.queue.length === 0) {
      if (stopped()) return undefined;
      await lane.arrived.wait();
    }
    if (windowMs > 0) {
      const deadline = Date.now() + windowMs;
      const full = () =>
        batchLength(lane.queue, spec.batchSize) < lane.queue.length || lane.queue.length >= spec.batchSize;
      while (!stopped() && !full() && Date.now() < deadline) await lane.arrived.wait(deadline - Date.now());
    }
    if (stopped()) return undefined;
    const batch = lane.queue.splice(0, batchLength(lane.queue, spec.batchSize));
    room.notify();
    return batch;
  }

  async function runLane(lane: Lane): Promise<void> {
    for (let batch = await gather(lane); batch; batch = await gather(lane)) await processBatch(batch);
  }

  /** Puts records in their lanes, in order; returns those whose lane is full (and any after them in it). */
  function place(records: SourceRecord[]): SourceRecord[] {
    const full = new Set<number>();
    const held: SourceRecord[] = [];
    const touched = new Set<Lane>();
    for (const record of records) {
      const lane = lanes[laneOf(record.partitionKey, lanes.length)]!;
      if (full.has(lane.index) || lane.queue.length >= laneCapacity) {
        full.add(lane.index);
        held.push(record);
      } else {
        lane.queue.push(record);
        touched.add(lane);
      }
    }
    for (const lane of touched) lane.arrived.notify();
    return held;
  }

  async function runReader(): Promise<void> {
    let held: SourceRecord[] = [];
    let failedReads = 0;
    while (!stopped()) {
      if (held.length > 0) {
        held = place(held);
        if (held.length > 0) await room.wait();
        continue;
      }
      let records: SourceRecord[];
      try {
        records = await source.read(readCount, READ_WAIT_MS);
        failedReads = 0;
      } catch (error) {
        if (stopped()) return;
        failedReads++;
        log.warn({ err: error, failedReads }, 'could not read the source; retrying');
        reportResult('PROBLEM: could not read the source', (error as Error).message);
        await sleep(backoffMs(failedReads, policy));
        continue;
      }
      if (records.length === 0) continue;
      ctx.metrics.recordsRead.inc(labels, records.length);
      const redelivered = records.filter((record) => record.redelivered).length;
      if (redelivered > 0) {
        ctx.metrics.duplicates.inc(labels, redelivered);
        log.info(
          { count: redelivered, first: records[0]!.sequence },
          'records handed out again after an unacknowledged read',
        );
      }
      for (const record of records) order.add(record.sequence);
      held = place(records);
    }
  }

  async function runStatus(): Promise<void> {
    while (!stopped()) {
      try {
        ctx.metrics.lagSeconds.set(labels, (await source.lagMs()) / 1000);
      } catch (error) {
        if (!stopped()) log.debug({ err: error }, 'could not measure the lag');
      }
      reportPosition();
      await sleep(STATUS_INTERVAL_MS);
    }
  }

  ctx.reportStatus({ state: 'Enabled', lastProcessingResult: 'No records processed' });
  log.info(
    {
      source: source.arn,
      batchSize: spec.batchSize,
      parallelizationFactor: spec.parallelizationFactor,
      maximumBatchingWindowInSeconds: spec.maximumBatchingWindowInSeconds,
    },
    'started stream mapping',
  );
  // Nothing in these loops is expected to throw; if something does, say so rather than die unheard.
  const unexpected = (loop: string) => (error: unknown) => {
    log.error({ err: error, loop }, 'a stream mapping loop failed; the mapping needs a restart');
    reportResult('PROBLEM: internal error', `${loop}: ${(error as Error).message}`);
  };
  const reader = runReader().catch(unexpected('reader'));
  const laneRuns = lanes.map((lane) => runLane(lane).catch(unexpected(`lane ${lane.index}`)));
  const status = runStatus().catch(unexpected('status'));
  let stopRun: Promise<void> | undefined;

  async function stop(): Promise<void> {
    stopping.abort();
    for (const lane of lanes) lane.arrived.notify();
    room.notify();
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all(laneRuns).then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), STOP_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (!finished) log.warn('a batch was still running at stop; its records will be delivered again');
    await Promise.all(acks);
    reportPosition();
    sourceClosed = true;
    await source
      .close()
      .catch((error: unknown) => log.warn({ err: error }, 'could not close the source cleanly'));
    await Promise.all([reader, status]);
    log.info({ position: positionReported }, 'stopped stream mapping');
  }

  return {
    stop() {
      stopRun ??= stop();
      return stopRun;
    },
  };
}
