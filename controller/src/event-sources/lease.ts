import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** The Redis key of the lease whose holder runs the event source mappings. */
export const EVENT_SOURCE_LEASE_KEY = 'hearth:event-sources:lease';

/** Renews the lease only while this holder has it. */
const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;
/** Deletes the lease only while it is this holder's (a release, or a dead holder's taken away). */
const DELETE_IF = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** A holder's name: host and pid (so a holder on the same host can be seen to have died), made unique. */
export function leaseHolder(host = hostname(), pid = process.pid): string {
  return `${host}:${pid}:${randomBytes(4).toString('hex')}`;
}

/**
 * Whether a lease holder is a process of this host that no longer exists: its lease can be taken
 * at once instead of after its expiry (a controller restarted after a crash).
 */
export function holderIsGone(holder: string, host = hostname()): boolean {
  const match = /^(.*):(\d+):[0-9a-f]+$/.exec(holder);
  if (!match || match[1] !== host) return false;
  try {
    process.kill(Number(match[2]), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * A Redis reply, or an error after `ms`: a client that queues commands while it reconnects would
 * otherwise keep a holder waiting past its lease's expiry.
 */
async function answerWithin<T>(reply: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  reply.catch(() => undefined);
  try {
    return await Promise.race([reply, late]);
  } finally {
    clearTimeout(timer);
  }
}

export interface RedisLeaseOptions {
  redis: Redis;
  key?: string;
  holder?: string;
  /** How long the lease lives without a renewal: how long a dead holder's successor waits. */
  ttlMs?: number;
  /** How often the holder renews it and the others try to take it. */
  renewMs?: number;
  logger: Logger;
  /** Called on taking the lease (not awaited: renewals go on meanwhile). */
  onAcquired(): void;
  /** Called on losing it (not renewed in time, or taken): whatever it guards must stop at once. */
  onLost(): void;
}

/**
 * One holder at a time through a Redis key with an expiry (SET NX PX), renewed by the holder and
 * taken over once it expires, or at once when it names a process of this host that is gone. A
 * holder that cannot renew within the expiry stops before anyone else may take over.
 */
export class RedisLease {
  readonly holder: string;
  private readonly key: string;
  private readonly ttlMs: number;
  private readonly renewMs: number;
  private held = false;
  private renewedAt = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private lastOtherHolder: string | undefined;

  constructor(private readonly options: RedisLeaseOptions) {
    this.holder = options.holder ?? leaseHolder();
    this.key = options.key ?? EVENT_SOURCE_LEASE_KEY;
    this.ttlMs = options.ttlMs ?? 10_000;
    this.renewMs = options.renewMs ?? Math.max(100, Math.floor(this.ttlMs / 5));
  }

  get isHeld(): boolean {
    return this.held;
  }

  start(): void {
    const tick = () => {
      this.running = this.step()
        .catch((error: unknown) =>
          // Redis unreachable while standing by: nothing to do but try again (the backend says Redis is down).
          this.options.logger.debug({ err: error }, 'could not try to take the event source lease'),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.renewMs);
        });
    };
    tick();
  }

  /** Stops trying; returns once a step under way is done. Releases nothing: see release(). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /** Gives the lease up, so that another controller takes over at once. */
  async release(): Promise<void> {
    if (!this.held) return;
    this.held = false;
    await this.options.redis.eval(DELETE_IF, 1, this.key, this.holder).catch(() => undefined);
  }

  private async step(): Promise<void> {
    if (this.stopped) return;
    if (this.held) {
      let renewed = false;
      try {
        const answer = this.options.redis.eval(RENEW, 1, this.key, this.holder, this.ttlMs);
        renewed = (await answerWithin(answer, this.renewMs)) === 1;
        if (renewed) this.renewedAt = Date.now();
        else
          this.options.logger.error(
            { holder: this.holder },
            'lost the event source lease to another controller',
          );
      } catch (error) {
        // Redis unreachable: keep going while the lease may still be ours, stop before it can expire.
        if (Date.now() - this.renewedAt < this.ttlMs - this.renewMs) return;
        this.options.logger.error({ err: error }, 'could not renew the event source lease in time');
      }
      if (renewed || this.stopped) return;
      this.held = false;
      this.options.onLost();
      return;
    }
    const taken = await this.options.redis.set(this.key, this.holder, 'PX', this.ttlMs, 'NX');
    if (taken !== 'OK') {
      const other = await this.options.redis.get(this.key);
      if (other === null) return;
      if (holderIsGone(other)) {
        this.options.logger.info({ holder: other }, 'the event source lease holder is gone; taking over');
        await this.options.redis.eval(DELETE_IF, 1, this.key, other);
        return this.step();
      }
      if (other !== this.lastOtherHolder) {
        this.lastOtherHolder = other;
        this.options.logger.info(
          { holder: other },
          'another controller runs the event source mappings; standing by',
        );
      }
      return;
    }
    this.held = true;
    this.renewedAt = Date.now();
    this.lastOtherHolder = undefined;
    this.options.logger.info({ holder: this.holder }, 'took the event source lease; running the mappings');
    this.options.onAcquired();
  }
}
