import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Cron } from 'croner';
import { Redis } from 'ioredis';
import { RedisKeys, type ScheduleSource, type SpecProblem } from '@hearth/api';
import { stableUid } from './supervisor.js';
import type { InvokeOutcome, MappingContext, MappingRunner } from './types.js';

/**
 * Schedules in EventBridge's syntax:
 *   cron(minutes hours day-of-month month day-of-week year), in the mapping's time zone;
 *   rate(N minute|minutes|hour|hours|day|days), plus rate(N second|seconds) as a Hearth extension.
 * Tick times are a pure function of the expression, so every controller computes the same ones
 * and a claim in Redis decides which of them invokes the function; the request id of a tick is a
 * pure function of the mapping and the tick, so that sending a tick again is harmless.
 */

export type Schedule =
  | { kind: 'rate'; expression: string; periodMs: number }
  | { kind: 'cron'; expression: string; timezone: string; pattern: string; cron: Cron };

const EXPRESSION_PATH = 'spec.source.schedule.expression';
const TIMEZONE_PATH = 'spec.source.schedule.timezone';

/** A schedule Hearth cannot honour, naming the field at fault. */
export class ScheduleError extends Error {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path} ${detail}`);
  }
}

const RATE_UNITS: Record<string, number> = {
  second: 1000,
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

/**
 * EventBridge's cron fields in order, with the characters each allows and the range that an
 * `a/b` step without an upper bound runs to (croner wants it written as `a-max/b`).
 */
const CRON_FIELDS = [
  { name: 'minutes', allowed: /^[0-9,\-*/]+$/, max: 59 },
  { name: 'hours', allowed: /^[0-9,\-*/]+$/, max: 23 },
  { name: 'day-of-month', allowed: /^([0-9,\-*/?]|L|W)+$/, max: 31 },
  { name: 'month', allowed: /^([0-9,\-*/]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)+$/i, max: 12 },
  { name: 'day-of-week', allowed: /^([0-9,\-*/?#]|L|SUN|MON|TUE|WED|THU|FRI|SAT)+$/i, max: 7 },
  { name: 'year', allowed: /^[0-9,\-*/]+$/, max: 2199 },
] as const;

function assertTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new ScheduleError(
      TIMEZONE_PATH,
      `must be an IANA time zone such as Europe/Paris (got "${timezone}")`,
    );
  }
}

function parseRate(expression: string, body: string): Schedule {
  const match = /^(\d+) (second|minute|hour|day)(s?)$/.exec(body.trim());
  if (!match) {
    throw new ScheduleError(
      EXPRESSION_PATH,
      `must be rate(N minutes|hours|days) or rate(N seconds) (got "${expression}")`,
    );
  }
  const value = Number(match[1]);
  const plural = match[3] === 's';
  if (value < 1) throw new ScheduleError(EXPRESSION_PATH, `rate must be at least 1 (got "${expression}")`);
  // EventBridge's own rule: "1 minute", "5 minutes".
  if (plural !== value > 1) {
    throw new ScheduleError(
      EXPRESSION_PATH,
      `takes the singular unit for 1 and the plural for more, as EventBridge does (got "${expression}")`,
    );
  }
  return { kind: 'rate', expression, periodMs: value * RATE_UNITS[match[2]!]! };
}

/** One EventBridge cron field as croner reads it (Quartz weekdays, `a/b` spelled as a range). */
function cronField(field: (typeof CRON_FIELDS)[number], value: string, expression: string): string {
  if (!field.allowed.test(value)) {
    throw new ScheduleError(
      EXPRESSION_PATH,
      `has "${value}" in the ${field.name} field, which EventBridge does not allow there (got "${expression}")`,
    );
  }
  return value
    .split(',')
    .map((part) => {
      if (part === '?') return '*';
      // A lone L among the weekdays is the week's last day (Saturday, 7), as in Quartz.
      if (field.name === 'day-of-week' && part.toUpperCase() === 'L') return '7';
      const step = /^(\w+)\/(\d+)$/.exec(part);
      return step ? `${step[1]}-${field.max}/${step[2]}` : part;
    })
    .join(',');
}

function parseCron(expression: string, body: string, timezone: string): Schedule {
  const fields = body.trim().split(/\s+/);
  if (fields.length !== 6) {
    throw new ScheduleError(
      EXPRESSION_PATH,
      `must have six fields: cron(minutes hours day-of-month month day-of-week year) (got "${expression}")`,
    );
  }
  const [, , dayOfMonth, , dayOfWeek] = fields;
  // EventBridge: one of the two day fields is "?", never both, never neither.
  if ((dayOfMonth === '?') === (dayOfWeek === '?')) {
    throw new ScheduleError(
      EXPRESSION_PATH,
      `must have ? in exactly one of day-of-month and day-of-week (got "${expression}")`,
    );
  }
  const pattern = ['0', ...fields.map((value, i) => cronField(CRON_FIELDS[i]!, value, expression))].join(' ');
  let cron: Cron;
  try {
    // With one day field "*", AND logic gives EventBridge's meaning: only the other one counts.
    cron = new Cron(pattern, { mode: '7-part', alternativeWeekdays: true, domAndDow: true, timezone });
  } catch (error) {
    throw new ScheduleError(EXPRESSION_PATH, `is not a valid cron expression: ${(error as Error).message}`);
  }
  return { kind: 'cron', expression, timezone, pattern, cron };
}

/** Parses a schedule source; throws a ScheduleError naming the field for what Hearth cannot honour. */
export function parseSchedule(source: Pick<ScheduleSource, 'expression' | 'timezone'>): Schedule {
  const timezone = source.timezone ?? 'UTC';
  assertTimezone(timezone);
  const match = /^(cron|rate)\((.*)\)$/s.exec(source.expression.trim());
  if (!match) {
    throw new ScheduleError(EXPRESSION_PATH, `must be cron(...) or rate(...) (got "${source.expression}")`);
  }
  return match[1] === 'rate'
    ? parseRate(source.expression, match[2]!)
    : parseCron(source.expression, match[2]!, timezone);
}

/** The schedule's problem as a manifest or status reports it, or undefined when it is fine. */
export function scheduleProblem(source: ScheduleSource): SpecProblem | undefined {
  try {
    parseSchedule(source);
    return undefined;
  } catch (error) {
    if (error instanceof ScheduleError) return { path: error.path, message: error.detail };
    throw error;
  }
}

/**
 * The first tick strictly after `afterMs`, or undefined when the schedule has no more (a cron
 * expression whose years are over). Rate ticks are multiples of the period since the epoch.
 */
export function nextTick(schedule: Schedule, afterMs: number): number | undefined {
  if (schedule.kind === 'rate') return (Math.floor(afterMs / schedule.periodMs) + 1) * schedule.periodMs;
  return schedule.cron.nextRun(new Date(afterMs))?.getTime();
}

/** EventBridge's "time": ISO 8601 in UTC to the second. */
export function tickTime(tickMs: number): string {
  return new Date(tickMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The event EventBridge sends a target on each tick of a scheduled rule. */
export function scheduledEvent(
  options: { ruleName: string; region: string; accountId: string },
  tickMs: number,
  id: string = randomUUID(),
): Record<string, unknown> {
  return {
    version: '0',
    id,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: options.accountId,
    time: tickTime(tickMs),
    region: options.region,
    resources: [`arn:aws:events:${options.region}:${options.accountId}:rule/${options.ruleName}`],
    detail: {},
  };
}

/** Ticks later than this (a blocked event loop, a suspended machine) are skipped, not fired. */
const MAX_LATENESS_MS = 60_000;
/** How long a tick's claim lives in Redis: far beyond any clock skew between controllers. */
const CLAIM_TTL_MS = 600_000;
/** Invoke attempts per tick when the gateway throttles or is unavailable. */
const INVOKE_ATTEMPTS = 5;
/** A rate(1 second) schedule has 60 ticks in MAX_LATENESS_MS; no schedule looks back at more. */
const MAX_LOOKBACK_TICKS = 120;

/** This controller's name in tick claims, for whoever inspects them. */
const CLAIMER = `${hostname()}:${process.pid}`;
/** A claim's value while its tick is being sent; once sent (or failed for good) it is `done:<claimer>`. */
const SENDING = 'sending:';

/** setTimeout's longest delay (about 24.8 days); a yearly cron sleeps in several steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Claims a tick whose claim says it is still being sent (its sender died): unless it was sent since. */
const RECLAIM = `local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, #ARGV[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

/**
 * The request id of a tick's invocation, the same on every controller: the gateway's async queue
 * takes a tick sent twice (by a controller that died before it heard the answer, then by its
 * successor) once. It is the Scheduled Event's `id` too.
 */
export function tickRequestId(mappingUid: string, tickMs: number): string {
  return stableUid(`${mappingUid}@${tickMs}`);
}

/**
 * The ticks a schedule that starts at `nowMs` must still send, given the claims of the ticks of
 * the last MAX_LATENESS_MS (`claims[i]` is the value of `ticks[i]`'s claim, null when unclaimed).
 * Before the first claimed tick no controller ran the schedule: those are not replayed, as on
 * EventBridge. From it on, a tick unclaimed (no controller ran it: a takeover's gap) or still
 * `sending` (its sender died before the gateway's answer) is sent now.
 */
export function ticksToCatchUp(ticks: readonly number[], claims: readonly (string | null)[]): number[] {
  const first = claims.findIndex((claim) => claim !== null);
  if (first < 0) return [];
  return ticks.slice(first).filter((_, i) => {
    const claim = claims[first + i];
    return claim === null || claim === undefined || claim.startsWith(SENDING);
  });
}

/**
 * Runs a schedule mapping: at each tick, whichever controller claims the tick in Redis (SET NX)
 * invokes the function asynchronously with the Scheduled Event (or the constant input), with the
 * tick's own request id. On start it first sends the recent ticks a controller before it claimed
 * and never finished, and those missed while no controller ran it since the last one claimed.
 */
export function runSchedule(ctx: MappingContext): MappingRunner {
  const source = ctx.spec.source.schedule;
  if (!source) throw new Error(`mapping ${ctx.id} has no schedule source`);
  const schedule = parseSchedule(source);
  const labels = { mapping: ctx.name, function: ctx.spec.functionName, source: 'schedule' };
  const redis = new Redis(ctx.redisUrl, { maxRetriesPerRequest: 2 });
  let lastRedisError = 0;
  redis.on('error', (error: Error) => {
    if (Date.now() - lastRedisError < 30_000) return;
    lastRedisError = Date.now();
    ctx.logger.warn({ err: error, mapping: ctx.id }, 'lost the connection to Redis; reconnecting');
  });

  const stopping = new AbortController();
  const firing = new Set<Promise<void>>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopping.signal.aborted) return resolve();
      const timer = setTimeout(done, Math.min(ms, MAX_TIMER_MS));
      function done() {
        clearTimeout(timer);
        stopping.signal.removeEventListener('abort', done);
        resolve();
      }
      stopping.signal.addEventListener('abort', done);
    });

  async function invokeWithRetries(tickMs: number): Promise<InvokeOutcome> {
    const requestId = tickRequestId(ctx.uid, tickMs);
    const event =
      source!.input !== undefined
        ? source!.input
        : scheduledEvent(
            { ruleName: ctx.name, region: ctx.region, accountId: ctx.accountId },
            tickMs,
            requestId,
          );
    let outcome: InvokeOutcome = { kind: 'unavailable', message: 'not invoked' };
    for (let attempt = 0; attempt < INVOKE_ATTEMPTS && !stopping.signal.aborted; attempt++) {
      if (attempt > 0) {
        await sleep(
          outcome.kind === 'throttled' ? Math.min(outcome.retryAfterMs, 10_000) : 250 * 2 ** attempt,
        );
        if (stopping.signal.aborted) break;
      }
      outcome = await ctx.invoker.invoke(ctx.spec.functionName, event, { async: true, requestId });
      if (outcome.kind === 'success' || outcome.kind === 'functionError') break;
      // No such function: it will not appear within this tick's retries; the status says so.
      if (outcome.kind === 'unavailable' && outcome.status === 404) break;
    }
    return outcome;
  }

  let lastWarning = { reason: '', at: 0 };

  /** Sends a tick if this controller claims it; `again`: a tick another controller claimed and never finished. */
  async function fire(tickMs: number, again = false): Promise<void> {
    const time = tickTime(tickMs);
    const key = RedisKeys.scheduleTick(ctx.name, tickMs);
    let claimed: boolean;
    try {
      claimed = again
        ? (await redis.eval(RECLAIM, 1, key, SENDING, SENDING + CLAIMER, CLAIM_TTL_MS)) === 1
        : (await redis.set(key, SENDING + CLAIMER, 'PX', CLAIM_TTL_MS, 'NX')) === 'OK';
    } catch (error) {
      // Without a claim no one may invoke: two controllers could both do it.
      ctx.metrics.invocations.inc({ ...labels, outcome: 'unclaimed' });
      ctx.logger.error({ err: error, mapping: ctx.id, tick: time }, 'could not claim a tick; skipped it');
      ctx.reportStatus({
        lastProcessingResult: 'PROBLEM: tick skipped',
        lastError: `could not claim tick ${time}: ${(error as Error).message}`,
      });
      return;
    }
    if (!claimed) return; // another controller has this tick
    if (again)
      ctx.logger.info(
        { mapping: ctx.id, tick: time },
        'sending a tick again that a stopped controller had claimed',
      );
    const outcome = await invokeWithRetries(tickMs);
    if (stopping.signal.aborted && outcome.kind !== 'success' && outcome.kind !== 'functionError') {
      // Stopped before the gateway took it: left `sending`, for whichever controller runs the schedule next.
      return;
    }
    await redis
      .set(key, `done:${CLAIMER}`, 'PX', CLAIM_TTL_MS)
      .catch((error: unknown) =>
        ctx.logger.warn(
          { err: error, mapping: ctx.id, tick: time },
          'could not mark a tick sent; it may be sent again, with the same request id',
        ),
      );
    ctx.metrics.invocations.inc({ ...labels, outcome: outcome.kind });
    if (outcome.kind === 'success') {
      ctx.logger.debug({ mapping: ctx.id, tick: time }, 'invoked the function for a tick');
      ctx.reportStatus({ lastProcessedPosition: time, lastProcessingResult: 'OK', lastError: undefined });
      return;
    }
    const reason =
      outcome.kind === 'throttled'
        ? 'throttled'
        : outcome.kind === 'unavailable'
          ? `gateway unavailable${outcome.status ? ` (${outcome.status})` : ''}: ${outcome.message}`
          : `${outcome.errorType}: ${outcome.payload.slice(0, 200)}`;
    // A schedule of seconds against a missing function would say the same every second.
    if (reason !== lastWarning.reason || Date.now() - lastWarning.at > 60_000) {
      lastWarning = { reason, at: Date.now() };
      ctx.logger.warn(
        { mapping: ctx.id, tick: time, outcome: outcome.kind },
        `could not invoke the function for a tick: ${reason}`,
      );
    }
    ctx.reportStatus({
      lastProcessedPosition: time,
      lastProcessingResult: `PROBLEM: ${outcome.kind}`,
      lastError: `tick ${time}: ${reason}`,
    });
  }

  const track = (tick: Promise<void>) => {
    const tracked = tick.catch((error: unknown) =>
      ctx.logger.error({ err: error, mapping: ctx.id }, 'a tick failed'),
    );
    firing.add(tracked);
    void tracked.finally(() => firing.delete(tracked));
  };

  /** The recent ticks a controller before this one left unsent, sent now (late, but once). */
  async function catchUp(nowMs: number): Promise<void> {
    const ticks: number[] = [];
    for (
      let tick = nextTick(schedule, nowMs - MAX_LATENESS_MS);
      tick !== undefined && tick <= nowMs && ticks.length < MAX_LOOKBACK_TICKS;
      tick = nextTick(schedule, tick)
    ) {
      ticks.push(tick);
    }
    if (ticks.length === 0) return;
    let claims: (string | null)[];
    try {
      claims = await redis.mget(ticks.map((tick) => RedisKeys.scheduleTick(ctx.name, tick)));
    } catch (error) {
      ctx.logger.warn({ err: error, mapping: ctx.id }, 'could not look for unsent ticks; not sending them');
      return;
    }
    const index = new Map(ticks.map((tick, i) => [tick, i]));
    for (const tick of ticksToCatchUp(ticks, claims)) track(fire(tick, claims[index.get(tick)!] !== null));
  }

  async function loop(): Promise<void> {
    let last = Date.now();
    await catchUp(last);
    while (!stopping.signal.aborted) {
      const tick = nextTick(schedule, Math.max(last, Date.now() - MAX_LATENESS_MS));
      if (tick === undefined) {
        ctx.reportStatus({ stateReason: `${schedule.expression} has no more ticks` });
        return;
      }
      // Timers may fire a millisecond early; a tick must not be fired before its time.
      while (!stopping.signal.aborted && Date.now() < tick) await sleep(tick - Date.now());
      if (stopping.signal.aborted) return;
      last = tick;
      track(fire(tick));
    }
  }

  ctx.logger.info(
    { mapping: ctx.id, function: ctx.spec.functionName, expression: schedule.expression },
    'started schedule',
  );
  const running = loop();
  return {
    async stop() {
      stopping.abort();
      await running;
      await Promise.all(firing);
      redis.disconnect();
    },
  };
}
