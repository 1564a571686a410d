import type { Redis } from 'ioredis';
import type { FunctionRoute } from '@hearth/api';

export type ThrottleReason =
  'ConcurrentInvocationLimitExceeded' | 'ReservedFunctionConcurrentInvocationLimitExceeded';

/** The pool of concurrency a call draws from, and what it is called when it runs dry. */
export interface AdmissionScope {
  key: string;
  limit: number;
  reason: ThrottleReason;
}

export const ConcurrencyKeys = {
  /** Sorted set: leases of calls to functions without reserved concurrency; score = expiry (ms). */
  unreserved: 'hearth:concurrency:unreserved',
  /** Sorted set: leases of calls to a function with reserved concurrency. */
  reserved: (name: string) => `hearth:concurrency:fn:${name}`,
} as const;

/**
 * Lambda's model: a function with reserved concurrency runs on its reservation alone (a
 * guarantee and a cap); every other function shares what the reservations leave of the account
 * limit.
 */
export function admissionScope(
  route: Pick<FunctionRoute, 'name' | 'spec'>,
  accountLimit: number,
  totalReserved: number,
): AdmissionScope {
  const reserved = route.spec.concurrency.reserved;
  if (reserved !== undefined) {
    return {
      key: ConcurrencyKeys.reserved(route.name),
      limit: reserved,
      reason: 'ReservedFunctionConcurrentInvocationLimitExceeded',
    };
  }
  return {
    key: ConcurrencyKeys.unreserved,
    limit: Math.max(0, accountLimit - totalReserved),
    reason: 'ConcurrentInvocationLimitExceeded',
  };
}

/** Drops expired leases, then takes one if the scope has room; Redis's clock, so gateways' clocks may differ. */
const ACQUIRE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
return 1
`;

/** Pushes the expiry of leases still held; a lease already dropped stays dropped (XX). */
const RENEW = `
local time = redis.call('TIME')
local expiry = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i]) end
return #ARGV - 1
`;

export interface ConcurrencyLease {
  readonly scope: AdmissionScope;
  readonly member: string;
}

type LeaseRedis = Redis & {
  hearthAcquireLease(key: string, ttlMs: number, limit: number, member: string): Promise<number>;
  hearthRenewLeases(key: string, ttlMs: number, ...members: string[]): Promise<number>;
};

/**
 * Cluster-wide concurrency as leases with expiry in Redis: exact across gateway replicas (one
 * atomic script per admission), and self-healing when a gateway dies (its leases are not renewed
 * and expire). Releases and renewals do not wait for Redis: the hot path pays one round trip.
 */
export class ConcurrencyLeases {
  private readonly redis: LeaseRedis;
  /** scope key -> members held by this gateway. */
  private readonly held = new Map<string, Set<string>>();
  private renewTimer: NodeJS.Timeout | undefined;
  private sequence = 0;

  constructor(
    redis: Redis,
    private readonly gatewayId: string,
    private readonly ttlMs: number,
    private readonly onError: (error: unknown) => void,
  ) {
    redis.defineCommand('hearthAcquireLease', { numberOfKeys: 1, lua: ACQUIRE });
    redis.defineCommand('hearthRenewLeases', { numberOfKeys: 1, lua: RENEW });
    this.redis = redis as LeaseRedis;
  }

  start(): void {
    // Renew well before expiry, so a slow Redis round trip or a busy event loop never loses a lease.
    this.renewTimer = setInterval(() => void this.renewAll(), Math.max(100, Math.floor(this.ttlMs / 3)));
    this.renewTimer.unref();
  }

  /** Takes a slot in the scope, or returns undefined when the scope is full (throttle). */
  async acquire(scope: AdmissionScope): Promise<ConcurrencyLease | undefined> {
    if (scope.limit <= 0) return undefined;
    const member = `${this.gatewayId}/${(this.sequence++).toString(36)}`;
    // Held before the answer arrives, so a renewal that races the acquire still covers it.
    this.hold(scope.key, member);
    let granted: number;
    try {
      granted = await this.redis.hearthAcquireLease(scope.key, this.ttlMs, scope.limit, member);
    } catch (error) {
      this.unhold(scope.key, member);
      throw error;
    }
    if (granted !== 1) {
      this.unhold(scope.key, member);
      return undefined;
    }
    return { scope, member };
  }

  /**
   * Gives the slot back. The ZREM is not waited for, but it leaves within this event-loop turn
   * (with the turn's other commands, see coalesceWrites), right behind the caller's answer and
   * long before the caller can call again through another gateway. Holding it back to ride along
   * with a later admission saved a write per call but let such a caller be throttled by its own
   * finished call.
   */
  release(lease: ConcurrencyLease): void {
    this.unhold(lease.scope.key, lease.member);
    this.redis.zrem(lease.scope.key, lease.member).catch(this.onError);
  }

  /** Leases this gateway holds right now. */
  heldCount(): number {
    let n = 0;
    for (const members of this.held.values()) n += members.size;
    return n;
  }

  async stop(): Promise<void> {
    clearInterval(this.renewTimer);
    const pipeline = this.redis.pipeline();
    for (const [key, members] of this.held) pipeline.zrem(key, ...members);
    this.held.clear();
    await pipeline.exec().catch(this.onError);
  }

  private async renewAll(): Promise<void> {
    await Promise.all(
      [...this.held].map(([key, members]) =>
        members.size === 0
          ? undefined
          : this.redis.hearthRenewLeases(key, this.ttlMs, ...members).catch(this.onError),
      ),
    );
  }

  private hold(key: string, member: string) {
    let members = this.held.get(key);
    if (!members) this.held.set(key, (members = new Set()));
    members.add(member);
  }

  private unhold(key: string, member: string) {
    const members = this.held.get(key);
    if (!members) return;
    members.delete(member);
    if (members.size === 0) this.held.delete(key);
  }
}
