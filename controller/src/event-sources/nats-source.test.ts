import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deliverPolicyFor, parseAckSubject } from './nats-source.js';

test('ack subjects: the old form and the one with a domain and account hash give the same delivery', () => {
  const expected = { deliveryCount: 2, streamSequence: 7, storedAt: 1_795_764_889_943 };
  assert.deepEqual(parseAckSubject('$JS.ACK.orders.hearth-orders.2.7.5.1795764889943113578.2'), expected);
  assert.deepEqual(
    parseAckSubject('$JS.ACK.hub.ACCHASH.orders.hearth-orders.2.7.5.1795764889943113578.2.r4nd0m'),
    expected,
  );
  assert.deepEqual(
    parseAckSubject('$JS.ACK._.ACCHASH.orders.hearth-orders.2.7.5.1795764889943113578.2'),
    expected,
    'an empty domain is "_", and the token at the end is optional',
  );
  assert.throws(() => parseAckSubject('_INBOX.abc'), /not a JetStream ack subject/);
  assert.throws(() => parseAckSubject('$JS.ACK.orders.c.1.2'), /not a JetStream ack subject/);
});

test('starting positions map to deliver policies', () => {
  assert.deepEqual(deliverPolicyFor({ startingPosition: 'TRIM_HORIZON' }), { deliver_policy: 'all' });
  assert.deepEqual(deliverPolicyFor({ startingPosition: 'LATEST' }), { deliver_policy: 'new' });
  assert.deepEqual(
    deliverPolicyFor({
      startingPosition: 'AT_TIMESTAMP',
      startingPositionTimestamp: '2026-11-27T08:00:00+01:00',
    }),
    { deliver_policy: 'by_start_time', opt_start_time: '2026-11-27T07:00:00.000Z' },
  );
  assert.throws(() => deliverPolicyFor({ startingPosition: 'AT_TIMESTAMP' }), /startingPositionTimestamp/);
});
