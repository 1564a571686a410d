import { test } from 'node:test';
import assert from 'node:assert/strict';
import { humanLine } from './children.js';

test('pino JSON becomes a readable line, with prefixes and non-info levels kept', () => {
  assert.equal(
    humanLine(
      '{"level":30,"time":1,"pid":2,"hostname":"h","name":"n","msg":"started instance","function":"hello"}',
    ),
    'started instance function=hello',
  );
  assert.equal(
    humanLine('[hello] {"level":50,"msg":"runtime exited","code":1}'),
    '[hello] ERROR runtime exited code=1',
  );
});

test('function log lines and broken JSON pass through unchanged', () => {
  assert.equal(humanLine('START RequestId: abc Version: $LATEST'), 'START RequestId: abc Version: $LATEST');
  assert.equal(humanLine('[hello] {not json'), '[hello] {not json');
});
