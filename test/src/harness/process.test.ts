import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort, isAlive, startProcess } from './process.js';

test('a started process is ready on its port, logs are collected, stop kills its whole group', async () => {
  const port = await freePort();
  const script = `
    const { spawn } = require('node:child_process');
    const grandchild = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    require('node:http').createServer((q, s) => s.end('ok')).listen(${port}, '127.0.0.1', () => {
      console.log('listening grandchild=' + grandchild.pid);
    });
    process.on('SIGTERM', () => {}); // ignores SIGTERM: stop must escalate
  `;
  const proc = await startProcess({
    name: 'http',
    command: process.execPath,
    args: ['-e', script],
    ready: { url: `http://127.0.0.1:${port}/` },
  });
  const line = await proc.waitForLog(/grandchild=(\d+)/);
  const grandchild = Number(line.split('=')[1]);
  assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), 'ok');
  assert.ok(isAlive(grandchild));
  await proc.stop('SIGTERM', 200);
  await sleep(50);
  assert.equal(isAlive(proc.pid), false);
  assert.equal(isAlive(grandchild), false, 'the grandchild in the same group is gone too');
});

test('a process that exits before it is ready fails the start with its logs', async () => {
  await assert.rejects(
    startProcess({
      name: 'crasher',
      command: process.execPath,
      args: ['-e', 'console.error("boom at start"); process.exit(3)'],
      ready: { url: 'http://127.0.0.1:1/' },
    }),
    /exited before it was ready:\nboom at start/,
  );
});
