import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Cron } from 'croner';
import { Redis } from 'ioredis';
import { RedisKeys, type ScheduleSource, type SpecProblem } from '@hearth/api';
import type { InvokeOutcome, MappingContext, MappingRunner } from './types.js';

/**
 * Schedules in EventBridge's syntax:
 *   cron(minutes hours day-of-month month day-of-week year), in the mapping's time zone;
 *   rate(N minute|minutes|hour|hours|day|days), plus rate(N second|seconds) as a Hearth extension.
 * Tick times are a pure function of the expression, so every controller computes the same ones
 * and a claim in Redis decides which of them invokes the function.
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

/** This controller's name in tick claims, for whoever inspects them. */
const CLAIMER = `${hostname()}:${process.pid}`;

/** setTimeout's longest delay (about 24.8 days); a yearly cron sleeps in several steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Runs a schedule mapping: at each tick, whichever controller claims the tick in Redis (SET NX)
 * invokes the function asynchronously with the Scheduled Event (or the constant input). Ticks
 * missed while no controller ran are not replayed, as on EventBridge.
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
    const event =
      source!.input !== undefined
        ? source!.input
        : scheduledEvent({ ruleName: ctx.name, region: ctx.region, accountId: ctx.accountId }, tickMs);
    let outcome: InvokeOutcome = { kind: 'unavailable', message: 'not invoked' };
    for (let attempt = 0; attempt < INVOKE_ATTEMPTS && !stopping.signal.aborted; attempt++) {
      if (attempt > 0) {
        await sleep(
          outcome.kind === 'throttled' ? Math.min(outcome.retryAfterMs, 10_000) : 250 * 2 ** attempt,
        );
        if (stopping.signal.aborted) break;
      }
      outcome = await ctx.invoker.invoke(ctx.spec.functionName, event, { async: true });
      if (outcome.kind === 'success' || outcome.kind === 'functionError') break;
      // No such function: it will not appear within this tick's retries; the status says so.
      if (outcome.kind === 'unavailable' && outcome.status === 404) break;
    }
    return outcome;
  }

  let lastWarning = { reason: '', at: 0 };

  async function fire(tickMs: number): Promise<void> {
    const time = tickTime(tickMs);
    let claimed: string | null;
    try {
      claimed = await redis.set(RedisKeys.scheduleTick(ctx.name, tickMs), CLAIMER, 'PX', CLAIM_TTL_MS, 'NX');
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
    if (claimed !== 'OK') return; // another controller has this tick
    const outcome = await invokeWithRetries(tickMs);
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

  async function loop(): Promise<void> {
    let last = Date.now();
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
      const firingTick = fire(tick).catch((error: unknown) =>
        ctx.logger.error({ err: error, mapping: ctx.id }, 'a tick failed'),
      );
      firing.add(firingTick);
      void firingTick.finally(() => firing.delete(firingTick));
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
