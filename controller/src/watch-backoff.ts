import type { Informer, KubernetesObject } from '@kubernetes/client-node';

/**
 * The delay before restarting a failed watch: doubling from 0.5 s up to 30 s. 'connect' fires
 * when a watch is attempted, not when it works, so only a watch that then stayed up for a while
 * resets it: a down API server is not hammered.
 */
export class WatchBackoff {
  private failures = 0;
  private connectedAt = 0;

  constructor(
    private readonly baseMs = 500,
    private readonly maxMs = 30_000,
    /** How long a watch must stay up after connecting for its next failure to count as the first. */
    private readonly healthyAfterMs = 30_000,
  ) {}

  /** Follows an informer's connects; `next()` is then its delay at each error. */
  static following(informer: Informer<KubernetesObject>): WatchBackoff {
    const backoff = new WatchBackoff();
    informer.on('connect', () => backoff.connected());
    return backoff;
  }

  connected(now = Date.now()): void {
    this.connectedAt = now;
  }

  /** The delay before the next restart, counting this failure. */
  next(now = Date.now()): number {
    if (now - this.connectedAt > this.healthyAfterMs) this.failures = 0;
    return Math.min(this.maxMs, this.baseMs * 2 ** this.failures++);
  }
}
