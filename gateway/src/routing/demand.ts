import type { Redis } from 'ioredis';
import { RedisKeys, type DemandReport } from '@hearth/api';
import type { FunctionLoad } from './router.js';

/**
 * Tells the controller how busy each function is from this gateway: the peak in-flight and
 * waiting counts of each interval into the function's demand hash, and at once on the demand
 * channel when a call starts waiting (so the pool grows without waiting for the next report).
 */
export class DemandReporter {
  private timer: NodeJS.Timeout | undefined;
  /** Functions whose last report was not all zeros: they get one more, zero, report. */
  private readonly active = new Set<string>();
  private readonly lastSignal = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly gatewayId: string,
    private readonly intervalMs: number,
    private readonly load: (resetPeaks: boolean) => FunctionLoad[],
    private readonly onError: (error: unknown) => void,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.report(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A call of `name` started waiting: write its demand now and wake the controller. */
  signalWaiting(name: string): void {
    const now = Date.now();
    // A burst of waiting calls needs one wake-up, not one per call.
    if (now - (this.lastSignal.get(name) ?? 0) < 100) return;
    this.lastSignal.set(name, now);
    const load = this.load(false).find((l) => l.name === name);
    if (!load) return;
    this.active.add(name);
    this.redis
      .multi()
      .hset(RedisKeys.demand(name), this.gatewayId, JSON.stringify(this.reportOf(load, now)))
      .publish(RedisKeys.demandChannel, name)
      .exec()
      .catch(this.onError);
  }

  async report(): Promise<void> {
    const now = Date.now();
    const pipeline = this.redis.pipeline();
    let writes = 0;
    for (const load of this.load(true)) {
      const busy = load.peakInFlight > 0 || load.peakWaiting > 0;
      if (!busy && !this.active.has(load.name)) continue;
      if (busy) this.active.add(load.name);
      else this.active.delete(load.name);
      pipeline.hset(RedisKeys.demand(load.name), this.gatewayId, JSON.stringify(this.reportOf(load, now)));
      writes++;
    }
    if (writes > 0) await pipeline.exec().catch(this.onError);
  }

  private reportOf(load: FunctionLoad, at: number): DemandReport {
    return { gateway: this.gatewayId, inFlight: load.peakInFlight, waiting: load.peakWaiting, at };
  }
}
