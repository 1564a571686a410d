import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayError } from '../core/errors.js';
import { mergePodLogs, parseLogToken, sinceTimeOf, type PodLog } from './pod-logs.js';

// As the API server answers with timestamps=true: RFC3339Nano, trailing zeros of the fraction cut.
const podA: PodLog = {
  pod: 'hello-abc12-x1',
  text: [
    '2026-11-27T10:00:00.5Z START RequestId: 1 Version: $LATEST',
    '2026-11-27T10:00:01.25Z hello from 1',
    '2026-11-27T10:00:01.25Z second line of the same write',
    '2026-11-27T10:00:02.000000001Z END RequestId: 1',
    '',
  ].join('\n'),
};
const podB: PodLog = {
  pod: 'hello-abc12-x2',
  text: ['2026-11-27T10:00:00.9Z START RequestId: 2', '2026-11-27T10:00:01.3Z', ''].join('\n'),
};

const lines = (page: ReturnType<typeof mergePodLogs>) => page.lines.map((l) => `${l.instance} ${l.line}`);

test('the pods of a function are merged by the time of each line', () => {
  const page = mergePodLogs([podA, podB], { limit: 100 });
  assert.deepEqual(lines(page), [
    'hello-abc12-x1 START RequestId: 1 Version: $LATEST',
    'hello-abc12-x2 START RequestId: 2',
    'hello-abc12-x1 hello from 1',
    'hello-abc12-x1 second line of the same write',
    'hello-abc12-x2 ',
    'hello-abc12-x1 END RequestId: 1',
  ]);
  assert.equal(page.lines[0]!.time, Date.parse('2026-11-27T10:00:00.500Z'));
  assert.equal(page.nextToken, page.lines.at(-1)!.id);
  assert.equal(new Set(page.lines.map((l) => l.id)).size, page.lines.length, 'ids are unique');
});

test('without after: the last lines; with it: the lines after it, oldest first', () => {
  assert.deepEqual(lines(mergePodLogs([podA, podB], { limit: 2 })), [
    'hello-abc12-x2 ',
    'hello-abc12-x1 END RequestId: 1',
  ]);
  const all = mergePodLogs([podA, podB], { limit: 100 });
  const after = all.lines[2]!.id; // "hello from 1": its twin of the same nanosecond is still to come
  const next = mergePodLogs([podA, podB], { after, limit: 2 });
  assert.deepEqual(lines(next), ['hello-abc12-x1 second line of the same write', 'hello-abc12-x2 ']);
  const rest = mergePodLogs([podA, podB], { after: next.nextToken!, limit: 100 });
  assert.deepEqual(lines(rest), ['hello-abc12-x1 END RequestId: 1']);
});

test('a follow-up read from the start of the token second repeats nothing and misses nothing', () => {
  // Seen so far: up to pod x2's line of 10:00:01.3.
  const token = mergePodLogs([podA, podB], { limit: 100 }).lines[4]!.id;
  assert.equal(sinceTimeOf(parseLogToken(token)), '2026-11-27T10:00:01Z');
  // What the API server gives from sinceTime 10:00:01 on, with a line written since.
  const since = (log: PodLog, more: string[] = []): PodLog => ({
    pod: log.pod,
    text: [...log.text.split('\n').filter((l) => l >= '2026-11-27T10:00:01' && l !== ''), ...more, ''].join(
      '\n',
    ),
  });
  const page = mergePodLogs([since(podA, ['2026-11-27T10:00:03Z REPORT RequestId: 1']), since(podB)], {
    after: token,
    limit: 100,
  });
  assert.deepEqual(lines(page), ['hello-abc12-x1 END RequestId: 1', 'hello-abc12-x1 REPORT RequestId: 1']);
  const quiet = mergePodLogs([since(podA), since(podB)], { after: page.nextToken!, limit: 100 });
  assert.deepEqual(quiet, { lines: [], nextToken: page.nextToken });
});

test('no pod, no line: no token; a token from elsewhere is refused', () => {
  assert.deepEqual(mergePodLogs([], { limit: 100 }), { lines: [] });
  assert.throws(
    () => mergePodLogs([podA], { after: '1700000000000-0', limit: 100 }),
    (error: unknown) => error instanceof GatewayError && error.code === 'InvalidParameterValueException',
  );
});
