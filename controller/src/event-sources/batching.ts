import type { EventSourceMappingSpec } from '@hearth/api';
import type { InvokeOutcome, SourceRecord } from './types.js';

/**
 * The decisions of a stream mapping, free of I/O: the Kinesis-shaped event a batch becomes, which
 * lane a record goes to, how big a batch is, and what happens after each invocation (checkpoint,
 * retry, bisect, give up). The runner (stream-runner.ts) wires them to a source and the invoker.
 */

/** A Hearth stream is one "shard" as handlers see it: order is kept per partition key within it. */
export const SHARD_ID = 'shardId-000000000000';

/** Lambda's cap on a synchronous request; a batch is cut before its event would exceed it. */
export const MAX_PAYLOAD_BYTES = 6 * 1024 * 1024;

/** Bytes one record adds to the event besides its base64 data (field names, ARNs, ids). */
const RECORD_OVERHEAD_BYTES = 512;

export interface KinesisEventContext {
  /** The source's ARN (eventSourceARN, streamArn). */
  sourceArn: string;
  region: string;
  accountId: string;
}

export interface KinesisRecord {
  kinesis: {
    kinesisSchemaVersion: '1.0';
    partitionKey: string;
    sequenceNumber: string;
    data: string;
    /** Epoch seconds, with milliseconds as the fraction. */
    approximateArrivalTimestamp: number;
  };
  eventSource: 'aws:kinesis';
  eventVersion: '1.0';
  eventID: string;
  eventName: 'aws:kinesis:record';
  invokeIdentityArn: string;
  awsRegion: string;
  eventSourceARN: string;
}

/**
 * The event a batch is invoked with, as JSON text: Kinesis's, so that handlers written for Kinesis
 * work unchanged. Written out directly rather than built as objects and serialized: a batch would
 * otherwise be hundreds of objects made only to be thrown away, on the mapping's hottest path.
 * The fields and their order are those of `KinesisRecord`.
 */
export function kinesisEvent(records: SourceRecord[], context: KinesisEventContext): string {
  // Hearth has no IAM roles; this is the role name the management API reports for functions.
  const invokeIdentityArn = `arn:aws:iam::${context.accountId}:role/hearth-function`;
  const afterEventId =
    `"eventName":"aws:kinesis:record","invokeIdentityArn":${JSON.stringify(invokeIdentityArn)},` +
    `"awsRegion":${JSON.stringify(context.region)},"eventSourceARN":${JSON.stringify(context.sourceArn)}}`;
  const parts = records.map((record) => {
    // The entry id in quotes, escaped: also the end of the eventID.
    const sequence = JSON.stringify(record.sequence);
    return (
      `{"kinesis":{"kinesisSchemaVersion":"1.0","partitionKey":${JSON.stringify(record.partitionKey)},` +
      `"sequenceNumber":${sequence},"data":"${record.data.toString('base64')}",` +
      `"approximateArrivalTimestamp":${JSON.stringify(record.arrivedAt / 1000)}},` +
      `"eventSource":"aws:kinesis","eventVersion":"1.0",` +
      `"eventID":"${SHARD_ID}:${sequence.slice(1)},${afterEventId}`
    );
  });
  return `{"Records":[${parts.join(',')}]}`;
}

/**
 * The lane (0..lanes-1) of a partition key: FNV-1a over its UTF-16 code units. Stable across
 * processes, so a restarted controller keeps a key in the same lane.
 */
export function laneOf(partitionKey: string, lanes: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < partitionKey.length; i++) {
    hash ^= partitionKey.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % lanes;
}

/**
 * How many records from the head of `queue` make the next batch: up to `batchSize`, and no more
 * than fit in one request (at least one, even when that one alone is too big).
 */
export function batchLength(
  queue: readonly SourceRecord[],
  batchSize: number,
  maxBytes = MAX_PAYLOAD_BYTES,
): number {
  let bytes = 0;
  let count = 0;
  for (const record of queue) {
    if (count === batchSize) break;
    bytes +=
      Math.ceil(record.data.length / 3) * 4 +
      record.partitionKey.length +
      record.sequence.length +
      RECORD_OVERHEAD_BYTES;
    if (count > 0 && bytes > maxBytes) break;
    count++;
  }
  return count;
}

/** A batch on its way through retries and bisection. */
export interface PendingBatch {
  records: SourceRecord[];
  /** Retries used after function errors and partial failures (maximumRetryAttempts counts these). */
  retries: number;
  /** Times these records were sent to the function (the failure record's approximateInvokeCount). */
  invokes: number;
  /** Consecutive throttled or unavailable calls: they use no retry, but the wait grows. */
  stalls: number;
  /** The last answer, for the failure record. */
  lastResponse?: { statusCode: number; functionError?: string };
  /** The last problem, for status and logs. */
  lastError?: string;
}

export function newBatch(records: SourceRecord[]): PendingBatch {
  return { records, retries: 0, invokes: 0, stalls: 0 };
}

/** What an invocation's outcome means for the batch it carried. */
export type BatchResult =
  | { kind: 'success' }
  /** Records before `failedFrom` succeeded; the rest are to be sent again. */
  | { kind: 'partial'; failedFrom: number }
  | { kind: 'functionError'; reason: string }
  /** Not the function's fault: send again later, no retry used. */
  | { kind: 'stalled'; reason: string; retryAfterMs?: number };

/**
 * Reads an outcome as Lambda does. With ReportBatchItemFailures, the answer names failed records
 * by sequence number and the lowest one is the checkpoint. No answer, null, an object without
 * `batchItemFailures` or an empty list mean complete success; anything else that is not a list
 * of `{itemIdentifier}` naming records of this batch means complete failure.
 */
export function interpretOutcome(
  outcome: InvokeOutcome,
  batch: readonly SourceRecord[],
  reportBatchItemFailures: boolean,
): BatchResult {
  switch (outcome.kind) {
    case 'throttled':
      return { kind: 'stalled', reason: 'the function was throttled', retryAfterMs: outcome.retryAfterMs };
    case 'unavailable':
      return {
        kind: 'stalled',
        reason: `the gateway was unavailable${outcome.status ? ` (${outcome.status})` : ''}: ${outcome.message}`,
      };
    case 'functionError':
      return { kind: 'functionError', reason: `${outcome.errorType}: ${outcome.payload.slice(0, 500)}` };
    case 'success':
      return reportBatchItemFailures ? partialResult(outcome.payload, batch) : { kind: 'success' };
  }
}

function partialResult(payload: string, batch: readonly SourceRecord[]): BatchResult {
  const malformed = (why: string): BatchResult => ({
    kind: 'functionError',
    reason: `InvalidBatchItemFailures: ${why}; the whole batch counts as failed`,
  });
  if (payload.trim() === '') return { kind: 'success' };
  let response: unknown;
  try {
    response = JSON.parse(payload);
  } catch {
    return malformed('the response is not JSON');
  }
  if (response === null) return { kind: 'success' };
  if (typeof response !== 'object' || Array.isArray(response))
    return malformed('the response is not an object');
  const failures = (response as { batchItemFailures?: unknown }).batchItemFailures;
  if (failures === undefined || failures === null) return { kind: 'success' };
  if (!Array.isArray(failures)) return malformed('batchItemFailures is not a list');
  if (failures.length === 0) return { kind: 'success' };
  const positions = new Map(batch.map((record, index) => [record.sequence, index]));
  let lowest = Infinity;
  for (const failure of failures as unknown[]) {
    const identifier = (failure as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof identifier !== 'string' || identifier === '')
      return malformed('an entry has no itemIdentifier');
    const index = positions.get(identifier);
    if (index === undefined) return malformed(`itemIdentifier ${identifier} is not in the batch`);
    lowest = Math.min(lowest, index);
  }
  return { kind: 'partial', failedFrom: lowest };
}

export interface RetryPolicy {
  /** -1: no limit. */
  maximumRetryAttempts: number;
  bisectBatchOnFunctionError: boolean;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
}

export function retryPolicy(
  spec: Pick<EventSourceMappingSpec, 'maximumRetryAttempts' | 'bisectBatchOnFunctionError'>,
  delays: { retryBaseDelayMs: number; retryMaxDelayMs: number },
): RetryPolicy {
  return {
    maximumRetryAttempts: spec.maximumRetryAttempts,
    bisectBatchOnFunctionError: spec.bisectBatchOnFunctionError,
    ...delays,
  };
}

/** Exponential backoff: base, 2 x base, 4 x base ... up to max. `step` counts from 1. */
export function backoffMs(
  step: number,
  policy: Pick<RetryPolicy, 'retryBaseDelayMs' | 'retryMaxDelayMs'>,
): number {
  return Math.min(policy.retryMaxDelayMs, policy.retryBaseDelayMs * 2 ** Math.max(0, Math.min(step - 1, 30)));
}

export type FailureCondition = 'RetryAttemptsExhausted' | 'RecordAgeExceeded';

/** What to do after one invocation of a batch. */
export interface NextStep {
  /** Finished successfully: checkpoint (acknowledge) them. */
  succeeded: SourceRecord[];
  /** Given up on: to the on-failure destination, then acknowledged. */
  givenUp?: { batch: PendingBatch; condition: FailureCondition };
  /** To send next, in this order, before anything else of the lane. */
  next: PendingBatch[];
  /** Wait this long before sending next[0]. */
  delayMs: number;
}

/**
 * Lambda's stream error handling, for one invocation of `batch` that ended in `result`:
 * - success: checkpoint everything;
 * - partial failure: checkpoint the records before the lowest failed one, send the rest again
 *   (a retry: it counts against maximumRetryAttempts, or a failing item would loop forever);
 * - function error with bisectBatchOnFunctionError and more than one record: split in two halves,
 *   first half first, at once; "splitting batches doesn't consume the retry quota" (Lambda's
 *   docs), so each half keeps the retries used so far and a poison record ends up alone, where
 *   its retries are counted;
 * - function error otherwise: send again after a backoff, or give up when maximumRetryAttempts
 *   retries are used (-1: never);
 * - throttled or unavailable: send again after Retry-After or a backoff, using no retry (records
 *   too old are dropped before each send, see `expireRecords`).
 */
export function afterInvoke(batch: PendingBatch, result: BatchResult, policy: RetryPolicy): NextStep {
  if (result.kind === 'success') return { succeeded: batch.records, next: [], delayMs: 0 };
  if (result.kind === 'stalled') {
    const stalls = batch.stalls + 1;
    const delayMs = Math.min(
      policy.retryMaxDelayMs,
      Math.max(result.retryAfterMs ?? 0, backoffMs(stalls, policy)),
    );
    return { succeeded: [], next: [{ ...batch, stalls, lastError: result.reason }], delayMs };
  }
  const exhausted = policy.maximumRetryAttempts !== -1 && batch.retries >= policy.maximumRetryAttempts;
  if (result.kind === 'partial') {
    const succeeded = batch.records.slice(0, result.failedFrom);
    const rest: PendingBatch = {
      ...batch,
      records: batch.records.slice(result.failedFrom),
      stalls: 0,
      lastError: `the function reported ${batch.records[result.failedFrom]!.sequence} as failed`,
    };
    if (exhausted)
      return {
        succeeded,
        givenUp: { batch: rest, condition: 'RetryAttemptsExhausted' },
        next: [],
        delayMs: 0,
      };
    return {
      succeeded,
      next: [{ ...rest, retries: batch.retries + 1 }],
      delayMs: backoffMs(batch.retries + 1, policy),
    };
  }
  const failed: PendingBatch = { ...batch, stalls: 0, lastError: result.reason };
  if (policy.bisectBatchOnFunctionError && batch.records.length > 1) {
    const middle = Math.ceil(batch.records.length / 2);
    return {
      succeeded: [],
      next: [
        { ...failed, records: batch.records.slice(0, middle) },
        { ...failed, records: batch.records.slice(middle) },
      ],
      delayMs: 0,
    };
  }
  if (exhausted)
    return {
      succeeded: [],
      givenUp: { batch: failed, condition: 'RetryAttemptsExhausted' },
      next: [],
      delayMs: 0,
    };
  return {
    succeeded: [],
    next: [{ ...failed, retries: batch.retries + 1 }],
    delayMs: backoffMs(batch.retries + 1, policy),
  };
}

/**
 * Splits off the records older than maximumRecordAgeInSeconds (-1: none ever are): Lambda does
 * not send records past that age, whatever happened to them before.
 */
export function expireRecords(
  batch: PendingBatch,
  maximumRecordAgeInSeconds: number,
  now: number,
): { expired?: PendingBatch; fresh?: PendingBatch } {
  if (maximumRecordAgeInSeconds === -1) return { fresh: batch };
  const oldestAllowed = now - maximumRecordAgeInSeconds * 1000;
  const expired = batch.records.filter((record) => record.arrivedAt < oldestAllowed);
  if (expired.length === 0) return { fresh: batch };
  const fresh = batch.records.filter((record) => record.arrivedAt >= oldestAllowed);
  return {
    expired: { ...batch, records: expired },
    ...(fresh.length > 0 ? { fresh: { ...batch, records: fresh } } : {}),
  };
}

/** The status code and function error an outcome leaves in a failure record. */
export function responseOf(outcome: InvokeOutcome): { statusCode: number; functionError?: string } {
  switch (outcome.kind) {
    case 'success':
      return { statusCode: 200 };
    case 'functionError':
      return { statusCode: 200, functionError: outcome.errorType };
    case 'throttled':
      return { statusCode: 429 };
    case 'unavailable':
      // No answer at all reads as the service being unavailable.
      return { statusCode: outcome.status ?? 503 };
  }
}

/** Lambda's on-failure record for a stream batch that was given up on. */
export interface StreamFailureRecord {
  requestContext: {
    requestId: string;
    functionArn: string;
    condition: FailureCondition;
    approximateInvokeCount: number;
  };
  responseContext: { statusCode: number; executedVersion: '$LATEST'; functionError?: string };
  version: '1.0';
  timestamp: string;
  KinesisBatchInfo: {
    shardId: string;
    startSequenceNumber: string;
    endSequenceNumber: string;
    approximateArrivalOfFirstRecord: string;
    approximateArrivalOfLastRecord: string;
    batchSize: number;
    streamArn: string;
  };
}

export function streamFailureRecord(options: {
  batch: PendingBatch;
  condition: FailureCondition;
  functionArn: string;
  streamArn: string;
  requestId: string;
  now: number;
}): StreamFailureRecord {
  const { batch } = options;
  const first = batch.records[0]!;
  const last = batch.records.at(-1)!;
  const response = batch.lastResponse;
  return {
    requestContext: {
      requestId: options.requestId,
      functionArn: options.functionArn,
      condition: options.condition,
      approximateInvokeCount: batch.invokes,
    },
    responseContext: {
      // Records that expired before their first call have no answer; 200 stands in for one.
      statusCode: response?.statusCode ?? 200,
      executedVersion: '$LATEST',
      ...(response?.functionError ? { functionError: response.functionError } : {}),
    },
    version: '1.0',
    timestamp: new Date(options.now).toISOString(),
    KinesisBatchInfo: {
      shardId: SHARD_ID,
      startSequenceNumber: first.sequence,
      endSequenceNumber: last.sequence,
      approximateArrivalOfFirstRecord: new Date(first.arrivedAt).toISOString(),
      approximateArrivalOfLastRecord: new Date(last.arrivedAt).toISOString(),
      batchSize: batch.records.length,
      streamArn: options.streamArn,
    },
  };
}

/**
 * The checkpoint of records read in order but finished out of order (lanes run side by side):
 * the last record before which everything is finished.
 */
export class ReadOrder {
  private readonly finished = new Map<string, boolean>();
  private position: string | undefined;

  add(sequence: string): void {
    this.finished.set(sequence, false);
  }

  finish(sequence: string): void {
    if (this.finished.has(sequence)) this.finished.set(sequence, true);
  }

  /** Advances past the finished head; returns the checkpoint (undefined before any record finished). */
  checkpoint(): string | undefined {
    for (const [sequence, done] of this.finished) {
      if (!done) break;
      this.finished.delete(sequence);
      this.position = sequence;
    }
    return this.position;
  }
}
