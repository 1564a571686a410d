/**
 * A work queue of object keys (`namespace/name`) in the manner of client-go's: a key waiting is
 * queued once however often it is added; a key being processed is never handed out twice at
 * once, and one added meanwhile is handled once more afterwards. Failures come back with per-key
 * exponential backoff under an overall token-bucket rate limit.
 */
export interface WorkQueueOptions {
  /** First retry delay of a failing key; doubled on each further failure. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Overall retries per second and burst (all keys together). */
  ratePerSecond?: number;
  burst?: number;
}

export class WorkQueue {
  private readonly queue: string[] = [];
  /** Keys that need processing (queued, or to be queued again once their processing ends). */
  private readonly dirty = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly delayed = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private readonly waiters: ((key: string | undefined) => void)[] = [];
  private tokens: number;
  private tokensAt = Date.now();
  private shuttingDown = false;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly ratePerSecond: number;
  private readonly burst: number;

  constructor(options: WorkQueueOptions = {}) {
    this.baseDelayMs = options.baseDelayMs ?? 5;
    this.maxDelayMs = options.maxDelayMs ?? 300_000;
    this.ratePerSecond = options.ratePerSecond ?? 10;
    this.burst = options.burst ?? 100;
    this.tokens = this.burst;
  }

  get length(): number {
    return this.queue.length;
  }

  add(key: string): void {
    if (this.shuttingDown || this.dirty.has(key)) return;
    this.dirty.add(key);
    if (this.processing.has(key)) return;
    const waiter = this.waiters.shift();
    if (waiter) {
      this.dirty.delete(key);
      this.processing.add(key);
      waiter(key);
    } else {
      this.queue.push(key);
    }
  }

  /** Adds the key after `delayMs`; of several pending delays for a key the earliest wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.shuttingDown) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.delayed.set(key, { at, timer });
  }

  /** Adds a key that failed: after its own backoff, and no sooner than the overall rate allows. */
  addRateLimited(key: string): void {
    this.addAfter(key, this.backoffFor(key));
  }

  /** The delay the next addRateLimited of this key waits (it counts as one more failure). */
  backoffFor(key: string): number {
    const failures = this.failures.get(key) ?? 0;
    this.failures.set(key, failures + 1);
    const perKey = Math.min(this.maxDelayMs, this.baseDelayMs * 2 ** Math.min(failures, 30));
    return Math.max(perKey, this.takeToken());
  }

  /** The key succeeded: its next failure starts from the base delay again. */
  forget(key: string): void {
    this.failures.delete(key);
  }

  failuresOf(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  /** The next key to process, waiting for one; undefined once the queue is shut down. */
  get(): Promise<string | undefined> {
    if (this.shuttingDown) return Promise.resolve(undefined);
    const key = this.queue.shift();
    if (key !== undefined) {
      this.dirty.delete(key);
      this.processing.add(key);
      return Promise.resolve(key);
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Processing of the key ended; if it was added meanwhile it is queued again now. */
  done(key: string): void {
    this.processing.delete(key);
    if (this.dirty.has(key)) {
      this.dirty.delete(key);
      this.add(key);
    }
  }

  shutDown(): void {
    this.shuttingDown = true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    for (const waiter of this.waiters.splice(0)) waiter(undefined);
  }

  /** Token bucket: the wait in ms before one more retry may go (0 when a token is free). */
  private takeToken(): number {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.tokensAt) / 1000) * this.ratePerSecond);
    this.tokensAt = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.ratePerSecond) * 1000);
  }
}

/** What a reconcile asks of the queue when it succeeded. */
export interface ReconcileResult {
  /** Look again after this long (polling something that has no events). */
  requeueAfterMs?: number;
}

export interface RunOptions {
  workers?: number;
  onError?: (key: string, error: unknown) => void;
}

/**
 * Runs `reconcile` for queued keys with `workers` at a time until the queue shuts down. An error
 * means "try again later" (backoff); success forgets the key's failures.
 */
export async function runWorkers(
  queue: WorkQueue,
  reconcile: (key: string) => Promise<ReconcileResult | void>,
  options: RunOptions = {},
): Promise<void> {
  const worker = async () => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        const result = await reconcile(key);
        queue.forget(key);
        if (result?.requeueAfterMs !== undefined) queue.addAfter(key, result.requeueAfterMs);
      } catch (error) {
        options.onError?.(key, error);
        queue.addRateLimited(key);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: options.workers ?? 2 }, worker));
}
