import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  nextTick,
  parseSchedule,
  scheduledEvent,
  scheduleProblem,
  tickRequestId,
  ticksToCatchUp,
  tickTime,
  type Schedule,
} from './schedule.js';

const utc = (expression: string, timezone = 'UTC') => parseSchedule({ expression, timezone });

/** The next `n` ticks after `from`, as ISO strings. */
function ticks(schedule: Schedule, from: string, n: number): string[] {
  const out: string[] = [];
  let at = Date.parse(from);
  for (let i = 0; i < n; i++) {
    const tick = nextTick(schedule, at);
    if (tick === undefined) break;
    out.push(new Date(tick).toISOString());
    at = tick;
  }
  return out;
}

test('rate ticks are multiples of the period since the epoch, so every controller computes the same', () => {
  assert.deepEqual(ticks(utc('rate(5 minutes)'), '2026-11-27T07:03:12.345Z', 3), [
    '2026-11-27T07:05:00.000Z',
    '2026-11-27T07:10:00.000Z',
    '2026-11-27T07:15:00.000Z',
  ]);
  assert.deepEqual(ticks(utc('rate(1 day)'), '2026-11-27T07:00:00Z', 1), ['2026-11-28T00:00:00.000Z']);
  assert.deepEqual(ticks(utc('rate(2 hours)'), '2026-11-27T08:00:00Z', 1), ['2026-11-27T10:00:00.000Z']);
  // A tick is strictly after the time asked about: the one just fired never comes back.
  assert.equal(nextTick(utc('rate(1 second)'), 1_000), 2_000);
  assert.equal(nextTick(utc('rate(10 seconds)'), 1_764_000_001_234), 1_764_000_010_000);
});

test('rate takes EventBridge units with their singular and plural, and seconds as an extension', () => {
  assert.equal((utc('rate(1 minute)') as { periodMs: number }).periodMs, 60_000);
  assert.equal((utc('rate(3 seconds)') as { periodMs: number }).periodMs, 3_000);
  for (const bad of [
    'rate(5 minute)',
    'rate(1 minutes)',
    'rate(0 minutes)',
    'rate(1 week)',
    'rate(minutes)',
  ]) {
    const problem = scheduleProblem({ expression: bad, timezone: 'UTC' });
    assert.equal(problem?.path, 'spec.source.schedule.expression', bad);
    assert.match(problem.message, new RegExp(bad.replace(/[()]/g, '\\$&')));
  }
});

test('cron: steps, ranges, names and lists as EventBridge writes them', () => {
  assert.deepEqual(ticks(utc('cron(0/15 * * * ? *)'), '2026-11-27T07:00:00Z', 3), [
    '2026-11-27T07:15:00.000Z',
    '2026-11-27T07:30:00.000Z',
    '2026-11-27T07:45:00.000Z',
  ]);
  assert.deepEqual(ticks(utc('cron(5/20 8-9 * * ? *)'), '2026-11-27T08:50:00Z', 3), [
    '2026-11-27T09:05:00.000Z',
    '2026-11-27T09:25:00.000Z',
    '2026-11-27T09:45:00.000Z',
  ]);
  // 2026-11-27 is a Friday: MON-FRI runs then, and next on Monday.
  assert.deepEqual(ticks(utc('cron(0 18 ? * MON-FRI *)'), '2026-11-27T12:00:00Z', 2), [
    '2026-11-27T18:00:00.000Z',
    '2026-11-30T18:00:00.000Z',
  ]);
  // Weekdays are numbered from Sunday = 1, as in EventBridge (and Quartz).
  assert.deepEqual(ticks(utc('cron(0 12 ? * 1,7 *)'), '2026-11-27T12:00:00Z', 2), [
    '2026-11-28T12:00:00.000Z',
    '2026-11-29T12:00:00.000Z',
  ]);
  assert.deepEqual(ticks(utc('cron(30 6 1 JAN,JUL ? *)'), '2026-11-27T00:00:00Z', 2), [
    '2027-01-01T06:30:00.000Z',
    '2027-07-01T06:30:00.000Z',
  ]);
});

test('cron: L, W and # in the day fields', () => {
  assert.deepEqual(ticks(utc('cron(0 12 L * ? *)'), '2027-01-01T00:00:00Z', 2), [
    '2027-01-31T12:00:00.000Z',
    '2027-02-28T12:00:00.000Z',
  ]);
  // 2027-05-15 is a Saturday: the nearest weekday is Friday the 14th.
  assert.deepEqual(ticks(utc('cron(0 12 15W 5 ? *)'), '2027-01-01T00:00:00Z', 1), [
    '2027-05-14T12:00:00.000Z',
  ]);
  // The second Tuesday (3#2) and the last Friday (6L) of the month.
  assert.deepEqual(ticks(utc('cron(0 12 ? * 3#2 *)'), '2026-11-27T00:00:00Z', 1), [
    '2026-12-08T12:00:00.000Z',
  ]);
  assert.deepEqual(ticks(utc('cron(0 12 ? * 6L *)'), '2026-11-28T00:00:00Z', 1), [
    '2026-12-25T12:00:00.000Z',
  ]);
  // A lone L among the weekdays is Saturday.
  assert.deepEqual(ticks(utc('cron(0 12 ? * L *)'), '2026-11-27T00:00:00Z', 1), ['2026-11-28T12:00:00.000Z']);
});

test('cron: the year field, and a schedule whose years are over has no next tick', () => {
  assert.deepEqual(ticks(utc('cron(0 0 1 1 ? 2028/2)'), '2026-11-27T00:00:00Z', 2), [
    '2028-01-01T00:00:00.000Z',
    '2030-01-01T00:00:00.000Z',
  ]);
  assert.equal(nextTick(utc('cron(0 0 * * ? 2020-2021)'), Date.parse('2026-01-01T00:00:00Z')), undefined);
});

test('cron runs in the mapping time zone, daylight saving included', () => {
  const paris = utc('cron(0 9 * * ? *)', 'Europe/Paris');
  // Paris is UTC+2 until the last Sunday of October 2026, UTC+1 after.
  assert.deepEqual(ticks(paris, '2026-10-24T12:00:00Z', 3), [
    '2026-10-25T08:00:00.000Z',
    '2026-10-26T08:00:00.000Z',
    '2026-10-27T08:00:00.000Z',
  ]);
  assert.deepEqual(ticks(paris, '2026-10-23T12:00:00Z', 1), ['2026-10-24T07:00:00.000Z']);
  // 02:30 does not exist on 2027-03-28 in Paris: it runs at 03:00, right after the gap; on
  // 2026-10-25 it happens twice and runs once.
  const halfPastTwo = utc('cron(30 2 * * ? *)', 'Europe/Paris');
  assert.deepEqual(ticks(halfPastTwo, '2027-03-27T12:00:00Z', 1), ['2027-03-28T01:00:00.000Z']);
  assert.deepEqual(ticks(halfPastTwo, '2026-10-24T12:00:00Z', 2), [
    '2026-10-25T00:30:00.000Z',
    '2026-10-26T01:30:00.000Z',
  ]);
});

test('what EventBridge rejects, or Hearth cannot honour, is a problem naming the field', () => {
  const cases: [string, string, RegExp][] = [
    ['cron(0 12 * * * *)', 'UTC', /\? in exactly one of day-of-month and day-of-week/],
    ['cron(0 12 ? * ? *)', 'UTC', /\? in exactly one/],
    ['cron(0 12 * * ?)', 'UTC', /six fields/],
    ['cron(0 12 1#2 * ? *)', 'UTC', /day-of-month field/],
    ['cron(0 12 ? * 2W *)', 'UTC', /day-of-week field/],
    ['cron(0 12 ? JANUARY MON *)', 'UTC', /month field/],
    ['cron(61 12 * * ? *)', 'UTC', /not a valid cron expression/],
    ['every(5 minutes)', 'UTC', /must be cron\(\.\.\.\) or rate\(\.\.\.\)/],
  ];
  for (const [expression, timezone, message] of cases) {
    const problem = scheduleProblem({ expression, timezone });
    assert.equal(problem?.path, 'spec.source.schedule.expression', expression);
    assert.match(problem.message, message, expression);
  }
  const zone = scheduleProblem({ expression: 'rate(1 minute)', timezone: 'Mars/Olympus' });
  assert.equal(zone?.path, 'spec.source.schedule.timezone');
  assert.match(zone.message, /Mars\/Olympus/);
  assert.equal(
    scheduleProblem({ expression: 'cron(0 12 * * ? *)', timezone: 'America/New_York' }),
    undefined,
  );
});

test('the Scheduled Event has EventBridge shape, its time the tick to the second', () => {
  const tick = Date.parse('2026-11-27T07:05:00.000Z');
  assert.equal(tickTime(tick + 999), '2026-11-27T07:05:00Z');
  assert.deepEqual(
    scheduledEvent({ ruleName: 'nightly', region: 'us-east-1', accountId: '000000000000' }, tick, 'id-1'),
    {
      version: '0',
      id: 'id-1',
      'detail-type': 'Scheduled Event',
      source: 'aws.events',
      account: '000000000000',
      time: '2026-11-27T07:05:00Z',
      region: 'us-east-1',
      resources: ['arn:aws:events:us-east-1:000000000000:rule/nightly'],
      detail: {},
    },
  );
});

test('on start, ticks are caught up from the first one a controller claimed: unclaimed or unfinished ones, not finished ones', () => {
  const ticks = [1000, 2000, 3000, 4000, 5000, 6000];
  // Nothing claimed: the schedule is new (or no controller ran it for a while); nothing is replayed.
  assert.deepEqual(ticksToCatchUp(ticks, [null, null, null, null, null, null]), []);
  assert.deepEqual(
    ticksToCatchUp(ticks, [null, 'done:a:1', 'sending:a:1', null, 'a:1', null]),
    [3000, 4000, 6000],
    'sending (its sender died) and unclaimed after the first claim (the takeover gap) are sent; done ones, and the claims of before this format, are not',
  );
});

test("a tick's request id is the same on every controller, and differs between ticks and mappings", () => {
  assert.equal(tickRequestId('uid-1', 5000), tickRequestId('uid-1', 5000));
  assert.notEqual(tickRequestId('uid-1', 5000), tickRequestId('uid-1', 6000));
  assert.notEqual(tickRequestId('uid-1', 5000), tickRequestId('uid-2', 5000));
  assert.match(
    tickRequestId('uid-1', 5000),
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
  );
});
