import type { FunctionRoute, InstanceEndpoint } from '@hearth/api';
import type { Discovery } from '../core/discovery.js';
import { GatewayError } from '../core/errors.js';

/** What the router knows of one instance: its endpoint and the calls this gateway has on it. */
export interface InstanceSlot {
  endpoint: InstanceEndpoint;
  inFlight: number;
  /** Epoch ms until which the instance is skipped after refusing a call (503) or a connection. */
  skipUntil: number;
}

/**
 * The instance to send the next call to, or undefined when none can take it. Only ready,
 * non-draining instances of the current revision with a free slot qualify; among them the
 * busiest wins, so load packs onto few instances and the others can idle and scale down.
 */
export function pickInstance(
  slots: Iterable<InstanceSlot>,
  revision: string,
  perInstance: number,
  now: number,
): InstanceSlot | undefined {
  let best: InstanceSlot | undefined;
  for (const slot of slots) {
    if (!isRoutable(slot, revision, now) || slot.inFlight >= perInstance) continue;
    if (!best || slot.inFlight > best.inFlight) best = slot;
  }
  return best;
}

export function isRoutable(slot: InstanceSlot, revision: string, now: number): boolean {
  const e = slot.endpoint;
  return e.ready && !e.draining && e.revision === revision && slot.skipUntil <= now;
}

/**
 * The error for a call that waited its whole cold-start budget: with instances that were all
 * busy the function is over capacity (429, clients retry); with none at all it is not ready.
 */
export function noInstanceError(name: string, budgetMs: number, hadRoutableInstance: boolean): GatewayError {
  if (hadRoutableInstance) {
    return new GatewayError(
      'TooManyRequestsException',
      `Rate Exceeded: every instance of ${name} stayed busy for ${budgetMs} ms.`,
      { Reason: 'ConcurrentInvocationLimitExceeded' },
      1,
    );
  }
  return new GatewayError(
    'ResourceNotReadyException',
    `No instance of function ${name} became ready within ${budgetMs} ms.`,
  );
}

const callerWentAway = () =>
  new GatewayError('ServiceException', 'The caller went away while the call waited for an instance.');

/** A leased place on an instance; `release` must be called exactly once. */
export interface InstanceLease {
  readonly endpoint: InstanceEndpoint;
  /** Gives the place back; `refused` skips the instance for a while (it answered 503 or could not be reached). */
  release(refused?: boolean): void;
}

interface Waiter {
  resolve(lease: InstanceLease): void;
  reject(error: Error): void;
  pool: FunctionPool;
  /** Epoch ms when the call stops waiting. */
  waitUntil: number;
  /** The caller's, when it can go away: its waiting calls, in `waitingOn`. */
  signal: AbortSignal | undefined;
}

class FunctionPool {
  readonly slots = new Map<string, InstanceSlot>();
  readonly waiters: Waiter[] = [];
  inFlight = 0;
  peakInFlight = 0;
  peakWaiting = 0;
  /** Looks again for the waiters when a skipped instance comes back; set only while one is skipped. */
  skipTimer: NodeJS.Timeout | undefined;
  /**
   * Ends the waits whose time is up: one timer per pool, set for the earliest, rather than one
   * per waiting call (setting and clearing those was a measurable share of a waiting call's CPU).
   */
  budgetTimer: NodeJS.Timeout | undefined;
  budgetTimerAt = Infinity;
  constructor(public route: FunctionRoute) {}
  get perInstance() {
    return this.route.spec.concurrency.perInstance ?? 1;
  }
}

export interface FunctionLoad {
  name: string;
  inFlight: number;
  waiting: number;
  /** Highest values since the last `takePeaks`. */
  peakInFlight: number;
  peakWaiting: number;
}

export interface RouterOptions {
  coldStartBudgetMs: number;
  /** Called when a call of the function starts waiting for an instance. */
  onWaiting(name: string): void;
  /** How long an instance that refused a call is skipped. */
  refusedSkipMs?: number;
}

/**
 * Leases instances to calls (the activator): a free instance at once, otherwise the call waits
 * in FIFO order while the pool grows, up to the cold-start budget. Follows discovery, so
 * instances that appear, go or start draining count within the same tick.
 */
export class InstanceRouter {
  private readonly pools = new Map<string, FunctionPool>();
  private readonly unsubscribe: () => void;
  private readonly refusedSkipMs: number;
  /**
   * The calls waiting on each caller's signal. A signal is a client connection's, shared by the
   * calls it carries one after another: one abort listener per signal rather than one added and
   * removed per waiting call, which was a measurable share of a waiting call's CPU.
   */
  private readonly waitingOn = new WeakMap<AbortSignal, Set<Waiter>>();

  constructor(
    private readonly discovery: Discovery,
    private readonly options: RouterOptions,
  ) {
    this.refusedSkipMs = options.refusedSkipMs ?? 1000;
    this.unsubscribe = discovery.onChange((name) => this.sync(name));
  }

  close(): void {
    this.unsubscribe();
    for (const pool of this.pools.values()) {
      clearTimeout(pool.skipTimer);
      this.stopBudgetTimer(pool);
      for (const waiter of pool.waiters.splice(0)) {
        this.stopListening(waiter);
        waiter.reject(new GatewayError('ServiceException', 'The gateway is shutting down.'));
      }
    }
  }

  /**
   * A place on an instance of the route's current revision. `waitUntil` (epoch ms) bounds the
   * wait; a call that tries several instances passes the same one each time, so its whole
   * search stays within one cold-start budget.
   */
  lease(
    route: FunctionRoute,
    signal?: AbortSignal,
    waitUntil = Date.now() + this.options.coldStartBudgetMs,
  ): Promise<InstanceLease> {
    const pool = this.pool(route);
    const now = Date.now();
    const slot = pickInstance(pool.slots.values(), route.revision, pool.perInstance, now);
    if (slot) return Promise.resolve(this.take(pool, slot));
    return this.wait(pool, waitUntil, now, signal);
  }

  /** Per-function load, for metrics and demand reports; `resetPeaks` starts a new reporting window. */
  load(resetPeaks = false): FunctionLoad[] {
    const loads: FunctionLoad[] = [];
    for (const [name, pool] of this.pools) {
      loads.push({
        name,
        inFlight: pool.inFlight,
        waiting: pool.waiters.length,
        peakInFlight: pool.peakInFlight,
        peakWaiting: pool.peakWaiting,
      });
      if (resetPeaks) {
        pool.peakInFlight = pool.inFlight;
        pool.peakWaiting = pool.waiters.length;
      }
    }
    return loads;
  }

  /** Instances of current revisions this gateway has calls on (leased) and without (idle). */
  instanceCounts(): { name: string; leased: number; idle: number }[] {
    const now = Date.now();
    return [...this.pools.values()].map((pool) => {
      let leased = 0;
      let idle = 0;
      for (const slot of pool.slots.values()) {
        if (slot.inFlight > 0) leased++;
        else if (isRoutable(slot, pool.route.revision, now)) idle++;
      }
      return { name: pool.route.name, leased, idle };
    });
  }

  /** Takes in what discovery now says about a function, then serves waiting calls. */
  sync(name: string): void {
    const pool = this.pools.get(name);
    if (!pool) return;
    const route = this.discovery.getFunction(name);
    if (route) pool.route = route;
    const current = new Map(this.discovery.instances(name).map((e) => [e.id, e]));
    for (const [id, slot] of pool.slots) {
      const endpoint = current.get(id);
      // A vanished instance is forgotten once its last call here ends.
      if (endpoint) slot.endpoint = endpoint;
      else if (slot.inFlight === 0) pool.slots.delete(id);
      else slot.endpoint = { ...slot.endpoint, draining: true };
    }
    for (const [id, endpoint] of current) {
      if (!pool.slots.has(id)) pool.slots.set(id, { endpoint, inFlight: 0, skipUntil: 0 });
    }
    this.serveWaiters(pool);
  }

  private pool(route: FunctionRoute): FunctionPool {
    let pool = this.pools.get(route.name);
    if (!pool) {
      pool = new FunctionPool(route);
      this.pools.set(route.name, pool);
      this.sync(route.name);
    } else if (pool.route !== route) {
      pool.route = route;
    }
    return pool;
  }

  private take(pool: FunctionPool, slot: InstanceSlot): InstanceLease {
    slot.inFlight++;
    pool.inFlight++;
    if (pool.inFlight > pool.peakInFlight) pool.peakInFlight = pool.inFlight;
    let released = false;
    return {
      endpoint: slot.endpoint,
      release: (refused = false) => {
        if (released) return;
        released = true;
        slot.inFlight--;
        pool.inFlight--;
        if (refused) slot.skipUntil = Date.now() + this.refusedSkipMs;
        const stillKnown = this.discovery.instances(pool.route.name).some((e) => e.id === slot.endpoint.id);
        if (!stillKnown && slot.inFlight === 0) pool.slots.delete(slot.endpoint.id);
        this.serveWaiters(pool);
      },
    };
  }

  /** Queues a call that found no instance at `lookedAt`, until `waitUntil` (epoch ms). */
  private wait(
    pool: FunctionPool,
    waitUntil: number,
    lookedAt: number,
    signal?: AbortSignal,
  ): Promise<InstanceLease> {
    return new Promise<InstanceLease>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, pool, waitUntil, signal };
      if (signal) {
        if (signal.aborted) return reject(callerWentAway());
        this.listen(signal).add(waiter);
      }
      pool.waiters.push(waiter);
      if (pool.waiters.length > pool.peakWaiting) pool.peakWaiting = pool.waiters.length;
      if (waitUntil < pool.budgetTimerAt) this.setBudgetTimer(pool, waitUntil, lookedAt);
      this.recheckWhenSkipEnds(pool, lookedAt);
      this.options.onWaiting(pool.route.name);
    });
  }

  /** The set of calls waiting on `signal`; the first call makes the signal's one listener. */
  private listen(signal: AbortSignal): Set<Waiter> {
    let waiters = this.waitingOn.get(signal);
    if (!waiters) {
      const listening = new Set<Waiter>();
      signal.addEventListener(
        'abort',
        () => {
          for (const waiter of listening) {
            const index = waiter.pool.waiters.indexOf(waiter);
            if (index >= 0) waiter.pool.waiters.splice(index, 1);
            waiter.reject(callerWentAway());
          }
          listening.clear();
        },
        { once: true },
      );
      this.waitingOn.set(signal, (waiters = listening));
    }
    return waiters;
  }

  private stopListening(waiter: Waiter): void {
    if (waiter.signal) this.waitingOn.get(waiter.signal)?.delete(waiter);
  }

  private setBudgetTimer(pool: FunctionPool, at: number, now: number): void {
    this.stopBudgetTimer(pool);
    pool.budgetTimerAt = at;
    pool.budgetTimer = setTimeout(() => this.endExpiredWaits(pool), Math.max(0, at - now));
  }

  /** Fails the calls whose wait is up (with or without instances to tell them apart by), then sets the timer for the next. */
  private stopBudgetTimer(pool: FunctionPool): void {
    clearTimeout(pool.budgetTimer);
    pool.budgetTimer = undefined;
    pool.budgetTimerAt = Infinity;
  }

  private endExpiredWaits(pool: FunctionPool): void {
    this.stopBudgetTimer(pool);
    const now = Date.now();
    let next = Infinity;
    let hadRoutable: boolean | undefined;
    for (const waiter of [...pool.waiters]) {
      if (waiter.waitUntil > now) {
        next = Math.min(next, waiter.waitUntil);
        continue;
      }
      pool.waiters.splice(pool.waiters.indexOf(waiter), 1);
      this.stopListening(waiter);
      hadRoutable ??= [...pool.slots.values()].some((s) => isRoutable(s, pool.route.revision, now));
      waiter.reject(noInstanceError(pool.route.name, this.options.coldStartBudgetMs, hadRoutable));
    }
    if (next !== Infinity) this.setBudgetTimer(pool, next, now);
  }

  /**
   * Skipped instances come back by time alone, with no event to announce it: while calls wait,
   * one timer per pool looks again when the first skip ends (not a timer per waiting call).
   * `now` is the time of the look that found no instance: a skip that has ended since (a timer
   * fires by the loop's clock, a moment before the wall clock's) gets a look at once, rather than
   * none at all.
   */
  private recheckWhenSkipEnds(pool: FunctionPool, now: number): void {
    if (pool.skipTimer || pool.waiters.length === 0) return;
    let firstBack = Infinity;
    for (const slot of pool.slots.values()) {
      if (slot.skipUntil > now && slot.skipUntil < firstBack) firstBack = slot.skipUntil;
    }
    if (firstBack === Infinity) return;
    pool.skipTimer = setTimeout(() => {
      pool.skipTimer = undefined;
      this.serveWaiters(pool);
    }, firstBack - now);
  }

  private serveWaiters(pool: FunctionPool) {
    const now = Date.now();
    while (pool.waiters.length > 0) {
      const slot = pickInstance(pool.slots.values(), pool.route.revision, pool.perInstance, now);
      if (!slot) {
        this.recheckWhenSkipEnds(pool, now);
        return;
      }
      const waiter = pool.waiters.shift()!;
      this.stopListening(waiter);
      waiter.resolve(this.take(pool, slot));
    }
    if (pool.budgetTimer) this.stopBudgetTimer(pool);
  }
}
