import {
  ApiException,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  type CoordinationV1Api,
  type V1Lease,
} from '@kubernetes/client-node';
import type { Logger } from 'pino';

export interface LeaderElectionOptions {
  api: CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseSeconds?: number;
  /** How often the leader renews and a follower retries. */
  retryMs?: number;
  logger: Logger;
}

const status = (error: unknown) => (error instanceof ApiException ? error.code : undefined);
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/**
 * One leader at a time through a `coordination.k8s.io` Lease. Every write carries the Lease's
 * resourceVersion, so of two candidates racing for an expired lease exactly one wins (the other
 * gets a conflict). The leader renews; if it cannot renew within the lease duration it stops
 * leading before anyone else may take over.
 */
export class LeaderElector {
  private stopped = false;
  private leading = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  private inFlight: Promise<void> | undefined;
  private readonly leaseSeconds: number;
  private readonly retryMs: number;

  constructor(private readonly options: LeaderElectionOptions) {
    this.leaseSeconds = options.leaseSeconds ?? 15;
    this.retryMs = options.retryMs ?? 2000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Runs until stop(): calls onStart on gaining the lease and onStop on losing it. */
  run(onStart: () => void, onStop: () => void): void {
    const tick = async () => {
      if (this.stopped) return;
      let held = false;
      const attempt = this.tryAcquireOrRenew();
      this.inFlight = attempt.then(
        () => undefined,
        () => undefined,
      );
      try {
        held = await attempt;
      } catch (error) {
        this.options.logger.warn({ err: error, lease: this.options.name }, 'could not reach the lease');
      }
      if (this.stopped) return;
      if (held) this.lastRenew = Date.now();
      if (held && !this.leading) {
        this.leading = true;
        this.options.logger.info({ identity: this.options.identity }, 'became the leader');
        onStart();
      } else if (!held && this.leading && Date.now() - this.lastRenew > this.leaseSeconds * 1000 * 0.8) {
        // Stop before the lease runs out: another candidate may take it over right after.
        this.leading = false;
        this.options.logger.warn({ identity: this.options.identity }, 'lost the lease; stopped leading');
        onStop();
      }
      this.timer = setTimeout(() => void tick(), this.retryMs);
    };
    void tick();
  }

  /** Stops, and hands the lease back at once if held so that a successor need not wait. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    // An attempt still under way may take or renew the lease after this point: let it land first,
    // then give back whatever it holds.
    await this.inFlight;
    this.leading = false;
    const { api, namespace, name, identity } = this.options;
    try {
      const lease = await api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      await api.patchNamespacedLease(
        {
          name,
          namespace,
          body: {
            metadata: { resourceVersion: lease.metadata?.resourceVersion },
            spec: { holderIdentity: null, leaseDurationSeconds: 1 },
          },
        },
        mergePatch,
      );
      this.options.logger.info({ identity }, 'released the lease');
    } catch (error) {
      this.options.logger.warn({ err: error }, 'could not release the lease; it expires on its own');
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { api, namespace, name, identity } = this.options;
    const now = new V1MicroTime();
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (status(error) !== 404) throw error;
      try {
        await api.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: this.leaseSeconds,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
        });
        return true;
      } catch (createError) {
        if (status(createError) === 409) return false; // another candidate created it first
        throw createError;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity;
    // The client leaves MicroTime fields as the server's strings.
    const renewed = spec.renewTime ? new Date(spec.renewTime as unknown as string).getTime() : 0;
    const duration = (spec.leaseDurationSeconds ?? this.leaseSeconds) * 1000;
    const expired = !holder || renewed + duration < Date.now();
    if (holder !== identity && !expired) return false;
    const body = {
      metadata: { resourceVersion: lease.metadata?.resourceVersion },
      spec: {
        holderIdentity: identity,
        leaseDurationSeconds: this.leaseSeconds,
        renewTime: now,
        ...(holder !== identity
          ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }
          : {}),
      },
    };
    try {
      await api.patchNamespacedLease({ name, namespace, body }, mergePatch);
      return true;
    } catch (error) {
      if (status(error) === 409) return false; // someone else wrote it since we read it
      throw error;
    }
  }
}
