#!/usr/bin/env node
// The shim's process: settings from the environment, listen, start the runtimes, drain on SIGTERM.
import { pino } from 'pino';
import { createShim } from './app.js';
import { ConfigError, parseConfig } from './config.js';
import { FunctionLog } from './function-log.js';

let config;
try {
  config = parseConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`hearth-shim: invalid setting ${error.message}\n`);
  process.exit(2);
}

const operationalLog = pino.destination({ dest: 2, sync: false });
const logger = pino(
  { name: 'hearth-shim', level: config.logLevel, base: { function: config.functionName, pid: process.pid } },
  operationalLog,
);
// The function's log stream: one write per invocation, START to REPORT.
const functionLog = new FunctionLog(1);

const shim = await createShim(config, { logger, functionLog });
// The runtime starts before the shim listens: its start-up (a second Node process for the Node
// runtimes) overlaps the shim's own, and the first call finds it warm sooner.
const started = shim.start();
started.catch(() => undefined);
await new Promise<void>((resolve, reject) => {
  shim.server.once('error', reject);
  shim.server.listen(config.port, config.host, () => resolve());
});
const address = shim.server.address();
const port = typeof address === 'object' && address ? address.port : config.port;
logger.info(
  { host: config.host, port, runtime: config.runtime },
  `hearth-shim listening on http://${config.host}:${port}`,
);

let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'draining: finishing the invocation in flight');
  try {
    await shim.shutdown();
    logger.info('stopped');
  } catch (error) {
    logger.error({ err: error }, 'shutdown failed');
    process.exitCode = 1;
  }
  functionLog.flushSync();
  operationalLog.flushSync();
  process.exit();
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));

try {
  await started;
  logger.info('runtimes initialized: ready');
} catch (error) {
  logger.fatal({ err: error }, 'runtimes could not start');
  await shim.shutdown().catch(() => undefined);
  functionLog.flushSync();
  operationalLog.flushSync();
  process.exit(1);
}
