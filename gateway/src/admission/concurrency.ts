import { setTimeout as sleep } from 'node:timers/promises';
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
  /** Sorted set beside a scope's leases: gateways that may hold unused leases of it (a block); score = expiry. */
  blockHolders: (scopeKey: string) => `${scopeKey}:blocks`,
  /** Set for a moment when a full scope asked block holders to give back: no new blocks meanwhile. */
  pressure: (scopeKey: string) => `${scopeKey}:pressure`,
  /** Channel: a scope's key, published when a call found the scope full while gateways held blocks of it. */
  reclaimChannel: 'hearth:concurrency:reclaim',
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

/**
 * How many leases a gateway takes in one admission while the scope is far from its limit: a
 * sixteenth of the limit, at most 16 (the default account limit of 1000 gives 16). Below a limit
 * of 32 every call takes its own lease: a small limit is never far from full.
 */
export function blockSize(limit: number): number {
  const size = Math.min(16, Math.floor(limit / 16));
  return size >= 2 ? size : 1;
}

/**
 * Drops expired leases and block holders, then takes leases if the scope has room, on Redis's
 * clock (gateways' clocks may differ). A block (ARGV[3] leases) is granted only while the scope
 * stays at most half full with it and no call recently found it full; otherwise one lease.
 * Returns the number of leases taken (named ARGV[4] .. 1..n), 0 when the scope is full, or -1
 * when it is full but other gateways may hold unused leases of it: they are asked to give them
 * back (PUBLISH) and the caller should try again in a moment.
 */
const ACQUIRE = `
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl, limit, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local holders = redis.call('ZCARD', KEYS[2])
  if redis.call('ZSCORE', KEYS[2], ARGV[5]) then holders = holders - 1 end
  if holders <= 0 then return 0 end
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[7])
  redis.call('PUBLISH', ARGV[6], KEYS[1])
  return -1
end
local granted = 1
if want > 1 and count + want <= limit / 2 and redis.call('EXISTS', KEYS[3]) == 0 then
  granted = want
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[5])
end
local members = {}
for i = 1, granted do
  members[2 * i - 1] = now + ttl
  members[2 * i] = ARGV[4] .. i
end
redis.call('ZADD', KEYS[1], unpack(members))
return granted
`;

/**
 * Pushes the expiry of leases still held (and of the gateway's block registration, ARGV[2] unless
 * empty); what was dropped stays dropped (XX). Returns how many of the leases were still there.
 */
const RENEW = `
local time = redis.call('TIME')
local expiry = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) + tonumber(ARGV[1])
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], 'XX', expiry, ARGV[2]) end
local found = 0
for i = 3, #ARGV do found = found + redis.call('ZADD', KEYS[1], 'XX', 'CH', expiry, ARGV[i]) end
return found
`;

/** Gives unused leases back and drops the gateway's block registration (ARGV[1]) in one step. */
const GIVE_BACK = `
redis.call('ZREM', KEYS[2], ARGV[1])
if #ARGV > 1 then redis.call('ZREM', KEYS[1], unpack(ARGV, 2)) end
return #ARGV - 1
`;

/** Waits between tries of a call that found its scope full while other gateways held blocks of it (~60 ms in all). */
const RECLAIM_WAITS_MS = [1, 2, 4, 8, 16, 32];
/** How long a scope grants no blocks after it was found full with blocks out. */
const PRESSURE_MS = 1000;
/** Unused leases that stayed unused for this long are given back. */
const TRIM_INTERVAL_MS = 500;

export interface ConcurrencyLease {
  readonly scope: AdmissionScope;
  readonly member: string;
}

type LeaseRedis = Redis & {
  hearthAcquireLeases(
    leases: string,
    holders: string,
    pressure: string,
    ttlMs: number,
    limit: number,
    want: number,
    memberPrefix: string,
    gatewayId: string,
    channel: string,
    pressureMs: number,
  ): Promise<number>;
  hearthRenewLeases(
    leases: string,
    holders: string,
    ttlMs: number,
    holder: string,
    ...members: string[]
  ): Promise<number>;
  hearthGiveBackLeases(
    leases: string,
    holders: string,
    gatewayId: string,
    ...members: string[]
  ): Promise<number>;
};

/** What this gateway holds of one scope. */
class HeldScope {
  /** Every lease held: running calls' and unused ones. */
  readonly members = new Set<string>();
  /** Unused leases, the most recently given back last. */
  readonly spares: string[] = [];
  /** While true, a finished call's lease is kept for the next call instead of going back to Redis. */
  holdsBlock = false;
  /** The scope's limit when the block was taken: a changed limit ends the block. */
  blockLimit = 0;
  /** Counts the ends of blocks, so an answer to an admission sent before one ends is not taken for a new block. */
  epoch = 0;
  /** Admissions sent to Redis and not answered yet: any of them may come back with a block. */
  acquiring = 0;
  /** The fewest spares since the last trim: that many went unused the whole time. */
  fewestSpares = 0;

  constructor(readonly key: string) {}
}

/**
 * Cluster-wide concurrency as leases with expiry in Redis: exact across gateway replicas (an
 * atomic script decides every admission that reaches Redis), and self-healing when a gateway dies
 * (its leases are not renewed and expire).
 *
 * Far from the limit, one admission takes a block of leases: the first for its call, the rest
 * kept here for the next calls, and a finished call's lease is kept too, so a busy gateway's
 * calls mostly never reach Redis; leases unused for a trim interval go back. Leases kept are
 * counted in Redis like running ones, so the limit can never be passed; close to it (half full)
 * no block is granted and every call takes and returns its own lease. A call that finds the
 * scope full while gateways hold blocks of it asks them (a published message) to give their
 * unused leases back, and tries again, so no caller is throttled while slots sit unused.
 */
export class ConcurrencyLeases {
  private readonly redis: LeaseRedis;
  /** A connection of its own for the reclaim channel: a subscribed connection can run nothing else. */
  private readonly subscriber: Redis;
  private readonly scopes = new Map<string, HeldScope>();
  private renewTimer: NodeJS.Timeout | undefined;
  private trimTimer: NodeJS.Timeout | undefined;
  private sequence = 0;

  constructor(
    redis: Redis,
    private readonly gatewayId: string,
    private readonly ttlMs: number,
    private readonly onError: (error: unknown) => void,
  ) {
    redis.defineCommand('hearthAcquireLeases', { numberOfKeys: 3, lua: ACQUIRE });
    redis.defineCommand('hearthRenewLeases', { numberOfKeys: 2, lua: RENEW });
    redis.defineCommand('hearthGiveBackLeases', { numberOfKeys: 2, lua: GIVE_BACK });
    this.redis = redis as LeaseRedis;
    this.subscriber = redis.duplicate();
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('message', (_channel: string, key: string) => this.reclaim(key));
  }

  /** Subscribes to reclaims before any block can be taken, and starts renewing. */
  async start(): Promise<void> {
    await this.subscriber.subscribe(ConcurrencyKeys.reclaimChannel);
    // Renew well before expiry, so a slow Redis round trip or a busy event loop never loses a lease.
    this.renewTimer = setInterval(() => void this.renewAll(), Math.max(100, Math.floor(this.ttlMs / 3)));
    this.renewTimer.unref();
  }

  /** A lease kept from an earlier call, without asking Redis; undefined when there is none to take. */
  takeKept(scope: AdmissionScope): ConcurrencyLease | undefined {
    const held = this.scopes.get(scope.key);
    if (!held || held.spares.length === 0) return undefined;
    if (held.blockLimit !== scope.limit) {
      this.endBlock(held);
      return undefined;
    }
    const member = held.spares.pop()!;
    if (held.spares.length < held.fewestSpares) held.fewestSpares = held.spares.length;
    return { scope, member };
  }

  /** Takes a slot in the scope from Redis, or returns undefined when the scope is full (throttle). */
  async acquire(scope: AdmissionScope): Promise<ConcurrencyLease | undefined> {
    if (scope.limit <= 0) return undefined;
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.acquireOnce(scope);
      if (outcome !== 'reclaiming') return outcome;
      const wait = RECLAIM_WAITS_MS[attempt];
      if (wait === undefined) return undefined;
      await sleep(wait);
    }
  }

  /**
   * Gives the slot back: to the leases kept for the next calls while this gateway holds a block,
   * otherwise to Redis. That ZREM is not waited for, but it leaves within this event-loop turn
   * (with the turn's other commands, see coalesceWrites), right behind the caller's answer and
   * long before the caller can call again through another gateway.
   *
   * While the block lasts every lease is kept, however many: a busy gateway's answers and new
   * calls come in batches, and a cap at one block's size sent each batch's surplus back to Redis
   * only for the next batch to take it again (2.5 Redis commands per call at 64 callers). The
   * trim gives back what then goes unused.
   */
  release(lease: ConcurrencyLease): void {
    const held = this.scopes.get(lease.scope.key);
    if (held?.holdsBlock) {
      held.spares.push(lease.member);
      return;
    }
    held?.members.delete(lease.member);
    this.redis.zrem(lease.scope.key, lease.member).catch(this.onError);
  }

  async stop(): Promise<void> {
    clearInterval(this.renewTimer);
    clearInterval(this.trimTimer);
    const pipeline = this.redis.pipeline();
    for (const held of this.scopes.values()) {
      pipeline.zrem(ConcurrencyKeys.blockHolders(held.key), this.gatewayId);
      if (held.members.size > 0) pipeline.zrem(held.key, ...held.members);
    }
    this.scopes.clear();
    await pipeline.exec().catch(this.onError);
    this.subscriber.disconnect();
  }

  private async acquireOnce(scope: AdmissionScope): Promise<ConcurrencyLease | undefined | 'reclaiming'> {
    const held = this.held(scope.key);
    const want = blockSize(scope.limit);
    const epoch = held.epoch;
    const prefix = `${this.gatewayId}/${(this.sequence++).toString(36)}.`;
    held.acquiring++;
    const granted = await this.redis
      .hearthAcquireLeases(
        scope.key,
        ConcurrencyKeys.blockHolders(scope.key),
        ConcurrencyKeys.pressure(scope.key),
        this.ttlMs,
        scope.limit,
        want,
        prefix,
        this.gatewayId,
        ConcurrencyKeys.reclaimChannel,
        PRESSURE_MS,
      )
      .finally(() => held.acquiring--);
    if (granted <= 0) {
      // A call of this gateway may have finished meanwhile and left its lease here.
      const kept = this.takeKept(scope);
      if (held.holdsBlock) this.endBlock(held);
      return kept ?? (granted === 0 ? undefined : 'reclaiming');
    }
    const member = `${prefix}1`;
    held.members.add(member);
    if (granted > 1) {
      const rest = Array.from({ length: granted - 1 }, (_, i) => `${prefix}${i + 2}`);
      if (held.epoch === epoch) this.keep(held, rest, scope.limit);
      // The block ended (a reclaim) while this admission was on its way: not for keeping.
      else this.giveBack(held.key, rest);
    } else if (held.holdsBlock && want > 1) {
      // Half full or under pressure: from now on every call takes and returns its own lease.
      this.endBlock(held);
    }
    return { scope, member };
  }

  private keep(held: HeldScope, members: string[], limit: number): void {
    held.holdsBlock = true;
    held.blockLimit = limit;
    for (const member of members) {
      held.members.add(member);
      held.spares.push(member);
    }
    held.fewestSpares = Math.min(held.fewestSpares, held.spares.length);
    if (!this.trimTimer) {
      this.trimTimer = setInterval(() => this.trim(), TRIM_INTERVAL_MS);
      this.trimTimer.unref();
    }
  }

  /** Gives back the leases that went unused since the last trim; a gateway with none left in use ends its block. */
  private trim(): void {
    let blocks = 0;
    for (const held of this.scopes.values()) {
      if (!held.holdsBlock) continue;
      if (held.fewestSpares === held.members.size) {
        // Nothing ran on the block for a whole interval.
        this.endBlock(held);
        continue;
      }
      const unused = held.spares.splice(0, held.fewestSpares);
      for (const member of unused) held.members.delete(member);
      if (unused.length > 0) this.redis.zrem(held.key, ...unused).catch(this.onError);
      held.fewestSpares = held.spares.length;
      blocks++;
    }
    if (blocks === 0) {
      clearInterval(this.trimTimer);
      this.trimTimer = undefined;
    }
  }

  /**
   * Another gateway found the scope full while gateways were listed as holding blocks of it. A
   * gateway with no block and no admission on its way is not listed (ending a block drops the
   * listing), so it has nothing to do: at the limit every throttled call publishes, and they must
   * not each cost every gateway a script. An admission on its way may have been granted a block
   * before the message left: ending the block now makes its answer give that block back.
   */
  private reclaim(key: string): void {
    const held = this.scopes.get(key);
    if (held && (held.holdsBlock || held.acquiring > 0)) this.endBlock(held);
  }

  /** Stops keeping leases in the scope: gives back the unused ones and the block registration together. */
  private endBlock(held: HeldScope): void {
    held.holdsBlock = false;
    held.epoch++;
    const unused = held.spares.splice(0);
    for (const member of unused) held.members.delete(member);
    held.fewestSpares = 0;
    this.giveBack(held.key, unused);
  }

  private giveBack(key: string, members: string[]): void {
    this.redis
      .hearthGiveBackLeases(key, ConcurrencyKeys.blockHolders(key), this.gatewayId, ...members)
      .catch(this.onError);
  }

  private async renewAll(): Promise<void> {
    await Promise.all([...this.scopes.values()].map((held) => this.renew(held)));
  }

  private async renew(held: HeldScope): Promise<void> {
    if (held.members.size === 0 && !held.holdsBlock) return;
    const members = [...held.members];
    let found: number;
    try {
      found = await this.redis.hearthRenewLeases(
        held.key,
        ConcurrencyKeys.blockHolders(held.key),
        this.ttlMs,
        held.holdsBlock ? this.gatewayId : '',
        ...members,
      );
    } catch (error) {
      this.onError(error);
      return;
    }
    // Leases Redis lost (a restart without persistence): kept ones would go on serving calls that
    // no other gateway sees counted, so the block ends and new calls are admitted in Redis again.
    if (found < members.length && held.holdsBlock) this.endBlock(held);
  }

  private held(key: string): HeldScope {
    let held = this.scopes.get(key);
    if (!held) this.scopes.set(key, (held = new HeldScope(key)));
    return held;
  }
}
