/**
 * The decisions of the async path, as pure functions: what happens to an event after an
 * invocation (or before one), and when it runs next. The workers wire these to Redis.
 */

export type DeadLetterCondition = 'RetriesExhausted' | 'EventAgeExceeded';

/** Lambda's async retry schedule: about 1 minute before the 2nd attempt, 2 minutes before the 3rd. */
export const LAMBDA_RETRY_DELAYS_MS = [60_000, 120_000] as const;

/** Throttles and system errors: exponential backoff between these bounds (Lambda: 1 s .. 5 min). */
export const LAMBDA_REQUEUE_BACKOFF = { initialMs: 1000, maxMs: 300_000 } as const;

export interface BackoffBounds {
  initialMs: number;
  maxMs: number;
}

/**
 * Delay before retry number `retry` (1 = the 2nd attempt) after a function error. Past the end of
 * the configured list the last delay repeats, so a short list still covers every retry.
 */
export function functionErrorRetryDelayMs(retry: number, delaysMs: readonly number[]): number {
  if (delaysMs.length === 0) return 0;
  const index = Math.min(Math.max(retry, 1), delaysMs.length) - 1;
  return delaysMs[index]!;
}

/** How far a requeue delay may stray from its exponential value, either way (a fraction of it). */
export const REQUEUE_JITTER = 0.25;

/**
 * Delay before running a throttled event again; `requeues` counts earlier throttles of it. The
 * delay is drawn uniformly from ±REQUEUE_JITTER around the exponential value, that range cut to
 * the bounds (rather than clamping draws, which would pile them up on a bound), so that events
 * throttled together do not all come back at the same instant and get throttled together again.
 * `random` returns [0, 1).
 */
export function requeueBackoffMs(
  requeues: number,
  bounds: BackoffBounds,
  random: () => number = Math.random,
): number {
  // 2 ** 40 already exceeds any sane maximum; capping the exponent keeps the number finite.
  const exponent = Math.min(Math.max(requeues, 0), 40);
  const exponential = Math.min(bounds.maxMs, bounds.initialMs * 2 ** exponent);
  const lowest = Math.max(bounds.initialMs, exponential * (1 - REQUEUE_JITTER));
  const highest = Math.min(bounds.maxMs, exponential * (1 + REQUEUE_JITTER));
  return Math.round(lowest + random() * (highest - lowest));
}

/** True when an event of this age may no longer be invoked. */
export function isEventTooOld(ageMs: number, maxEventAgeSeconds: number): boolean {
  return ageMs > maxEventAgeSeconds * 1000;
}

/** How one run of an event ended, as far as the retry policy cares. */
export type RunOutcome =
  | { kind: 'success' }
  /** The handler failed or timed out: uses an attempt. */
  | { kind: 'functionError' }
  /** Throttled (429) or the platform failed (5xx): back on the queue, no attempt used. */
  | { kind: 'requeue' }
  /** The call can never succeed (unknown function, payload refused): no point retrying. */
  | { kind: 'rejected' };

export interface EventProgress {
  /** Invocations that ended in a function error so far, this run's included. */
  functionErrors: number;
  /** Throttles and system errors so far, before this run's. */
  requeues: number;
  /** Age of the event now (ms since it was accepted). */
  ageMs: number;
}

export interface AsyncPolicy {
  maxRetryAttempts: number;
  maxEventAgeSeconds: number;
  retryDelaysMs: readonly number[];
  requeueBackoff: BackoffBounds;
}

export type NextStep =
  | { action: 'succeed' }
  | { action: 'retry'; delayMs: number; usesAttempt: boolean }
  | { action: 'deadLetter'; condition: DeadLetterCondition };

/** What to do with an event after a run ended with `outcome`; `random` jitters requeue delays. */
export function nextStep(
  outcome: RunOutcome,
  progress: EventProgress,
  policy: AsyncPolicy,
  random: () => number = Math.random,
): NextStep {
  switch (outcome.kind) {
    case 'success':
      return { action: 'succeed' };
    case 'rejected':
      return { action: 'deadLetter', condition: 'RetriesExhausted' };
    case 'functionError': {
      const retriesUsed = progress.functionErrors - 1;
      if (retriesUsed >= policy.maxRetryAttempts)
        return { action: 'deadLetter', condition: 'RetriesExhausted' };
      const delayMs = functionErrorRetryDelayMs(retriesUsed + 1, policy.retryDelaysMs);
      return withinAge(progress.ageMs + delayMs, policy)
        ? { action: 'retry', delayMs, usesAttempt: true }
        : expired();
    }
    case 'requeue': {
      const delayMs = requeueBackoffMs(progress.requeues, policy.requeueBackoff, random);
      return withinAge(progress.ageMs + delayMs, policy)
        ? { action: 'retry', delayMs, usesAttempt: false }
        : expired();
    }
  }
}

// An event whose next run would come after its maximum age is discarded now rather than held
// until then: no run could happen anyway, and its failure destination hears of it sooner.
function withinAge(ageAtNextRunMs: number, policy: AsyncPolicy): boolean {
  return !isEventTooOld(ageAtNextRunMs, policy.maxEventAgeSeconds);
}

function expired(): NextStep {
  return { action: 'deadLetter', condition: 'EventAgeExceeded' };
}

/**
 * Job ids are request ids, and BullMQ refuses ids with `:` and reads all-digit ids as its own
 * counters.
 */
export function isUsableRequestId(requestId: string): boolean {
  return (
    requestId.length > 0 && requestId.length <= 128 && !requestId.includes(':') && !/^[0-9]+$/.test(requestId)
  );
}

/**
 * What a gateway last learnt of a function's backlog from Redis (a reservation's answer), and
 * how many events it has stored since without asking again.
 */
export interface BacklogReading {
  /** When it was read (ms, the gateway's clock). */
  readAt: number;
  /** Events accepted and not finished then, reservations included, the reading's own event too. */
  depth: number;
  /** Age of the oldest waiting event then (0: none waited). */
  oldestWaitingAgeMs: number;
  /** Events this gateway has stored since, without a reservation. */
  storedSince: number;
}

/**
 * Far from both limits an Event call needs no reservation of its own (a Redis script ahead of the
 * store, as much work in Redis as the store itself): a reading at most this old, with at most
 * BACKLOG_READING_STORES stored on it, decides. Each gateway can then add at most that many
 * events that the others do not see, so a depth within BACKLOG_DEPTH_MARGIN of its limit always
 * takes the exact path: the limit holds for up to ten gateways storing at full speed at once.
 */
export const BACKLOG_READING_MS = 100;
export const BACKLOG_READING_STORES = 1000;
export const BACKLOG_DEPTH_MARGIN = 10 * BACKLOG_READING_STORES;

/**
 * Whether an Event call may store its event on `reading` instead of reserving a place. The age of
 * the oldest waiting event can only have grown by the time since the reading (an event stored
 * later is younger), so that bound is exact; the depth may also have grown by what other gateways
 * stored since, which BACKLOG_DEPTH_MARGIN covers.
 */
export function backlogReadingSuffices(
  reading: BacklogReading,
  limits: { maxDepth: number; maxOldestAgeSeconds: number },
  now: number,
): boolean {
  const elapsed = now - reading.readAt;
  if (elapsed < 0 || elapsed >= BACKLOG_READING_MS || reading.storedSince >= BACKLOG_READING_STORES)
    return false;
  if (reading.depth + reading.storedSince + BACKLOG_DEPTH_MARGIN >= limits.maxDepth) return false;
  return reading.oldestWaitingAgeMs + elapsed <= limits.maxOldestAgeSeconds * 1000;
}
